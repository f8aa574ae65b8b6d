"""What the strategies share in Ray Tune: the search space as Tune domains, a scheduler
that knows the baseline's trial, the collapse stopper, the trial folders, the run config
(checkpoints kept, retries) and what a stored study says the search is.

Space -> Tune search space: inclusive YAML bounds become Tune's exclusive integer upper
bound + 1, which Ray's conversion turns back into Optuna's inclusive bound.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune import Stopper

from gan_search.core.config import SearchConfig
from gan_search.core.settings import TrialSettings
from gan_search.core.space import Param
from gan_search.core.vocabulary import Role


def tune_space(params: dict[str, Param]) -> dict[str, Any]:
    """Space parameters -> Ray Tune domains (bounds inclusive in the YAML)."""
    space = {}
    for name, p in params.items():
        if p.kind == "uniform":
            space[name] = tune.uniform(p.low, p.high)
        elif p.kind == "loguniform":
            space[name] = tune.loguniform(p.low, p.high)
        elif p.kind == "int":
            # Tune's upper bound is exclusive; the YAML's is inclusive
            space[name] = (tune.lograndint if p.log else tune.randint)(p.low, p.high + 1)
        else:
            space[name] = tune.choice(list(p.values))
    return space


class BaselineAware:
    """A scheduler that knows the baseline's trial by its id: the trial made with the
    baseline's role (settings.ROLE_KEY)."""

    baseline_id: str | None = None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if self.baseline_id is None and TrialSettings.of(trial.config).role == Role.BASELINE:
            self.baseline_id = trial.trial_id
        super().on_trial_add(tune_controller, trial)

    def is_baseline(self, trial: Any) -> bool:
        return trial.trial_id == self.baseline_id


class CollapseStopper(Stopper):
    """Stops a trial that reports ``collapsed`` (collapse above the threshold for
    ``patience`` evaluations in a row; the rule lives in the trial, see trainable.py)."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return bool(result.get("collapsed", False))

    def stop_all(self) -> bool:
        return False


def trial_dirname(trial: Any) -> str:
    """Short trial folders (Tune's default repeats every parameter in the name)."""
    return f"trial_{trial.trial_id}"


def run_config(name: str, storage: str, callbacks: list, keep: int = 1) -> Any:
    """``keep``: best checkpoints kept per trial, besides the latest (PBT wants 3 or more:
    a member copies another's latest while newer ones arrive)."""
    return tune.RunConfig(
        name=name, storage_path=storage, verbose=0, stop=CollapseStopper(), callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=keep, checkpoint_score_attribute="fid_lite",
            checkpoint_score_order="min"),  # the best ones (plus the latest, for resume)
        # a trial whose node dies, or whose checkpoint the storage refused, is retried from
        # its latest checkpoint (3 times at most); a trial's own errors are reported by the
        # trial and never reach this
        failure_config=tune.FailureConfig(max_failures=3))


def study_about(config: SearchConfig) -> dict[str, Any]:
    """What the search is, for a reader of its stored study."""
    return {"space": config.spec.name, "strategy": config.strategy, "seed": config.seed,
            "trials": config.trials, "iters": config.iters, "data": config.data_source}
