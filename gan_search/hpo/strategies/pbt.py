"""``pbt``: a population (the baseline, then configurations Optuna's QMC sampler spreads
over the space, handed to Tune as ``points_to_evaluate`` of a BasicVariantGenerator: Ray
refuses PBT with a SearchGenerator such as OptunaSearch) under Ray Tune's
PopulationBasedTraining, which ranks members by their current FID-lite every
``perturbation_interval`` evaluations; a member of the worst quarter copies one of the best
quarter and perturbs the searched settings that can change while training; the baseline
member is never replaced. PBT's own choices use Python's ``random`` (Ray's
implementation): they are not seeded. The population's study: population.py.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from gan_search.core.config import TRAINING_SETTINGS, SearchConfig
from gan_search.core.settings import ROLE_KEY, with_role
from gan_search.core.space import Param
from gan_search.core.vocabulary import Role, Status
from gan_search.hpo.strategies.tuning import (BaselineAware, run_config, study_about,
                                                 trial_dirname, tune_space)


class BaselinePBT(BaselineAware, PopulationBasedTraining):
    """Ray Tune's PBT whose baseline member is never replaced: it trains its configuration
    unchanged for the whole budget (the reference the population must beat), while other
    members may copy it. When the baseline ranks among the worst, the next worst member
    takes its place there. (Overrides PBT's ``_quantiles``, Ray 2.60.)"""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """A member's last evaluation (it finished, collapsed or diverged) takes no part:
        a member that copied another there would train nothing more and end a duplicate of
        it, and a finished member's last checkpoint is never handed to another to copy."""
        if result.get("status", Status.RUNNING) != Status.RUNNING:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _quantiles(self) -> tuple[list, list]:
        lower, upper = super()._quantiles()
        if not any(self.is_baseline(t) for t in lower):
            return lower, upper
        ranked = sorted((t for t, state in self._trial_state.items()
                         if state.last_score is not None and not math.isnan(state.last_score)
                         and not t.is_finished()),
                        key=lambda t: self._trial_state[t].last_score)  # worst first
        spare = [t for t in ranked if t not in lower and t not in upper and not self.is_baseline(t)]
        return [t for t in lower if not self.is_baseline(t)] + spare[:1], upper

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        """Ray's explored copy of the other member's config, with this member's own role:
        a member that copies the baseline does not become it."""
        new_config, operations = super()._get_new_config(trial, trial_to_clone)
        return {**new_config, ROLE_KEY: trial.config[ROLE_KEY]}, operations

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        """Ray's exploit, then the copied checkpoint copied again into the member's own
        folder: the member that was copied deletes its older checkpoints as better ones
        come, and a member that waited for its turn, or was resumed after Ctrl-C, failed to
        restore from a deleted one. The copies stay (others may copy them in turn): one
        checkpoint per copy on the storage."""
        from ray.train._internal.session import _TrainingResult

        super()._exploit(tune_controller, trial, trial_to_clone)
        manager = trial.run_metadata.checkpoint_manager
        latest = manager._latest_checkpoint_result
        own = own_copy(latest.checkpoint, trial.storage,
                       f"copied_checkpoint_{self._num_perturbations:06d}")
        manager._latest_checkpoint_result = _TrainingResult(checkpoint=own,
                                                            metrics=latest.metrics)


def own_copy(checkpoint: Any, storage: Any, name: str) -> Any:
    """``checkpoint`` copied into the trial folder of ``storage`` (local or s3://...) as
    ``name``."""
    import pyarrow.fs

    target = f"{storage.trial_fs_path}/{name}"
    storage.storage_filesystem.create_dir(target, recursive=True)
    pyarrow.fs.copy_files(checkpoint.path, target, source_filesystem=checkpoint.filesystem,
                          destination_filesystem=storage.storage_filesystem)
    return tune.Checkpoint(target, filesystem=storage.storage_filesystem)


class ClipToSpace:
    """PBT's explore step multiplies a float by 0.8 or 1.2: the result is clipped back into
    the space's bounds (a beta1 of 0.9 * 1.2 would be no setting at all)."""

    def __init__(self, bounds: dict[str, tuple[float, float]]) -> None:
        self.bounds = bounds

    def __call__(self, config: dict) -> dict:
        for name, (low, high) in self.bounds.items():
            config[name] = float(min(high, max(low, config[name])))
        return config


def mutations(params: dict[str, Param]) -> dict[str, Any]:
    """What PBT may change in a member while it trains: the searched settings among
    ``TRAINING_SETTINGS`` (choices and integers step to a neighbouring value or are drawn
    again; floats are multiplied by 0.8 or 1.2, or drawn again)."""
    space = tune_space(params)
    out: dict[str, Any] = {}
    for name in TRAINING_SETTINGS:
        p = params.get(name)
        if p is None:
            continue
        out[name] = list(p.values) if p.kind == "choice" else \
            list(range(p.low, p.high + 1)) if p.kind == "int" else space[name]
    return out


def population(config: SearchConfig) -> list[dict[str, Any]]:
    """PBT's starting members as Tune configs (settings and role): the baseline, then
    configurations Optuna's QMC (scrambled Sobol) sampler spreads over the space, seeded by
    the search's seed."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = OptunaSearch.convert_search_space(tune_space(config.searched))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.QMCSampler(seed=config.seed, scramble=True)
    study = optuna.create_study(sampler=sampler)
    baseline = config.baseline_point()
    members = [with_role(baseline, Role.BASELINE)] if baseline else []
    while len(members) < config.trials:
        trial = study.ask(distributions)
        study.tell(trial, 0.0)  # QMC takes its space from a finished trial
        members.append(with_role(trial.params, Role.MEMBER))
    return members


def pbt_tuner(config: SearchConfig, trainable: Any, storage: str, callbacks: list) -> Any:
    """PBT over the population (every member trains the whole budget): at every
    ``perturbation_interval`` evaluations a member in the worst quarter by its current
    FID-lite copies one of the best quarter (weights and settings) and perturbs the
    settings that can change while training; the baseline member is never replaced."""
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    every = config.eval_every * config.spec.scheduler.perturbation_interval
    changing = mutations(config.searched)
    bounds = {n: (config.searched[n].low, config.searched[n].high) for n, d in changing.items()
              if not isinstance(d, list)}
    scheduler = BaselinePBT(
        time_attr="step", metric="fid_lite", mode="min",
        perturbation_interval=every, hyperparam_mutations=changing, quantile_fraction=0.25,
        resample_probability=0.25, custom_explore_fn=ClipToSpace(bounds),
        require_attrs=False)  # a failed member reports no FID-lite: PBT passes it by
    from gan_search.hpo.strategies.population import PopulationStudy

    members = population(config)
    population_study = PopulationStudy(config, members, OptunaSearch.convert_search_space(
        tune_space(config.searched)), study_about(config))
    roles = tune.choice([Role.BASELINE.value, Role.MEMBER.value])  # each member's is preset
    return tune.Tuner(
        trainable,
        param_space={**tune_space(config.searched), ROLE_KEY: roles},
        tune_config=tune.TuneConfig(
            # every member exists from the start and PBT gives them turns (it pauses a
            # member at each decision while others wait): how many train at once is what
            # the resources allow, not --concurrency (a cap on created trials would start
            # members only as others end, and they would never train together)
            search_alg=BasicVariantGenerator(points_to_evaluate=members),
            scheduler=scheduler, num_samples=len(members),
            # PBT pauses members and Tune keeps their actors for reuse: on a cluster a kept
            # actor on a node that was lost fails the member it is given (measured:
            # test_a_pbt_search_survives_losing_a_worker), so there each start is a new one
            reuse_actors=config.address is None, trial_dirname_creator=trial_dirname),
        # a copied checkpoint must outlive the copier's wait: the donor reports up to
        # perturbation_interval more times meanwhile
        run_config=run_config(config.name, storage, [*callbacks, population_study],
                               keep=max(3, config.spec.scheduler.perturbation_interval + 2)))
