"""The Ray Tune and Optuna objects of a search: the search space, Optuna's sampler, ASHA
(which never stops the baseline early), the collapse stopper, and the two Tuners: the
search itself and the confirmation of its winners over fresh seeds.

Space -> Tune search space (inclusive YAML bounds become Tune's exclusive integer upper
bound + 1, which OptunaSearch turns back into Optuna's inclusive bound) -> OptunaSearch
(TPE, GP or random, by the strategy; one objective or two for a Pareto front; the baseline
evaluated first; a trial ASHA stopped told to Optuna as pruned: searcher.py) + ASHA on the
first objective + the collapse stopper -> trials with their resources.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune
from ray.tune import Stopper
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from gan_search.core.config import SearchConfig
from gan_search.core.space import Param
from gan_search.core.vocabulary import Sampler, Scheduler, Strategy
from gan_search.search.settings import CONFIRM_KEY, same_config

CONFIRM_DIR = "confirm"  # the confirmation's Tune experiment, inside the search's folder


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


def objectives(config: SearchConfig) -> tuple[list[str], list[str]]:
    """Result keys and modes the searcher optimises: ``score`` (the first objective's best
    so far, which ASHA also ranks by), then ``score_<name>`` for a second objective."""
    names = config.spec.objectives
    return ["score", *[f"score_{n}" for n in names[1:]]], ["min"] * len(names)


def build_sampler(config: SearchConfig) -> Any:
    """Optuna's sampler, by the strategy: TPE (multivariate, seeded, random for the first
    third of the trials up to 10), the GP sampler (the same start-up), or random search
    (the baseline to beat)."""
    import optuna

    sampler = Strategy(config.strategy).sampler
    if sampler == Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=config.seed)
    startup = min(10, max(2, config.trials // 3))  # random trials before the model of the space
    if sampler == Sampler.GP:
        return optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup,
                                      multivariate=True)


class BaselineASHA(ASHAScheduler):
    """ASHA that lets the baseline run its full budget: the search is compared with the
    hand-picked configuration at the same budget per trial, so ASHA may rank by it but
    never stops it."""

    def __init__(self, baseline: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.baseline = baseline

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and self.baseline is not None and \
                same_config(dict(trial.config), self.baseline):
            return TrialScheduler.CONTINUE
        return action


def build_scheduler(config: SearchConfig) -> Any:
    """ASHA on the trial's score at every evaluation (a rung per eval interval), or FIFO
    (a strategy without early stopping, or a single evaluation)."""
    spec = config.spec
    evals = math.ceil(config.iters / config.eval_every)
    if Strategy(config.strategy).scheduler == Scheduler.ASHA and evals > 1:
        return BaselineASHA(baseline=config.baseline_point(), time_attr="training_iteration",
                            metric="score", mode="min", max_t=evals,
                            grace_period=min(spec.scheduler.grace_period, evals),
                            reduction_factor=spec.scheduler.reduction_factor)
    return FIFOScheduler()


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


def _run_config(name: str, storage: str, callbacks: list) -> Any:
    return tune.RunConfig(
        name=name, storage_path=storage, verbose=0, stop=CollapseStopper(), callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute="fid_lite",
            checkpoint_score_order="min"),  # the best one (plus the latest, for resume)
        # a trial whose node dies is retried from its latest checkpoint (3 times at most);
        # a trial's own errors are reported by the trial and never reach this
        failure_config=tune.FailureConfig(max_failures=3))


def search_tuner(config: SearchConfig, trainable: Any, storage: str, callbacks: list) -> Any:
    """The search: OptunaSearch (the baseline first; stopped trials told as pruned), ASHA,
    the collapse stopper."""
    import optuna

    from gan_search.search.searcher import PrunedAwareOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    keys, modes = objectives(config)
    point = config.baseline_point()
    searcher = PrunedAwareOptunaSearch(
        metric=keys if len(keys) > 1 else keys[0], mode=modes if len(modes) > 1 else modes[0],
        sampler=build_sampler(config), study_name=config.name, seed=config.seed,
        points_to_evaluate=[point] if point else None)  # also seeds TPE with the baseline
    return tune.Tuner(
        trainable,
        param_space=tune_space(config.searched),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=build_scheduler(config),
                                    num_samples=config.trials,
                                    max_concurrent_trials=config.concurrency,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=_run_config(config.name, storage, callbacks))


def confirm_tuner(config: SearchConfig, trainable: Any, search_path: str, callbacks: list,
                  trials: list[dict[str, Any]]) -> Any:
    """The confirmation, in the search's folder: each given configuration once, full budget,
    no early stopping but the collapse stopper (its trials' config is ``{"confirm": {...}}``)."""
    return tune.Tuner(
        trainable,
        param_space={CONFIRM_KEY: tune.grid_search(trials)},
        tune_config=tune.TuneConfig(num_samples=1, scheduler=FIFOScheduler(),
                                    max_concurrent_trials=config.concurrency,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=_run_config(CONFIRM_DIR, search_path, callbacks))
