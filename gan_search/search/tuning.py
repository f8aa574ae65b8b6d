"""The Ray Tune and Optuna objects of a search: the search space, Optuna's sampler, ASHA
(which never stops the baseline early), the collapse stopper, and the two Tuners: the
search itself and the confirmation of its winners over fresh seeds.

Space -> Tune search space (inclusive YAML bounds become Tune's exclusive integer upper
bound + 1, which Ray's conversion turns back into Optuna's inclusive bound) -> StudySearch
over the search's stored Optuna study (TPE, GP or random, by the strategy; one objective or
two for a Pareto front; the baseline evaluated first; a trial ASHA stopped told to Optuna
as pruned: searcher.py, study.py) + ASHA on the first objective + the collapse stopper ->
trials with their resources.

``pbt``: a population (the baseline, then configurations Optuna's QMC sampler spreads over
the space, handed to Tune as ``points_to_evaluate`` of a BasicVariantGenerator: Ray refuses
PBT with a SearchGenerator such as OptunaSearch) under Ray Tune's PopulationBasedTraining,
which ranks members by their current FID-lite every ``perturbation_interval`` evaluations;
a member of the worst quarter copies one of the best quarter and perturbs the searched
settings that can change while training; the baseline member is never replaced.
PBT's own choices use Python's ``random`` (Ray's implementation): they are not seeded.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ray import tune
from ray.tune import Stopper
from ray.tune.schedulers import (ASHAScheduler, FIFOScheduler, PopulationBasedTraining,
                                 TrialScheduler)

from gan_search.core.config import TRAINING_SETTINGS, SearchConfig
from gan_search.core.settings import CONFIRM_KEY, ROLE_KEY, TrialSettings, with_role
from gan_search.core.space import Param
from gan_search.core.vocabulary import Role, Sampler, Scheduler, Status, Strategy
from gan_search.search import study

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

    sampler = config.strategy.sampler
    if sampler == Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=config.seed)
    startup = min(10, max(2, config.trials // 3))  # random trials before the model of the space
    if sampler == Sampler.GP:
        return optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup,
                                      multivariate=True)


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


class BaselineASHA(BaselineAware, ASHAScheduler):
    """ASHA that lets the baseline run its full budget: the search is compared with the
    hand-picked configuration at the same budget per trial, so ASHA may rank by it but
    never stops it."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and self.is_baseline(trial):
            return TrialScheduler.CONTINUE
        return action


def build_scheduler(config: SearchConfig) -> Any:
    """ASHA on the trial's score at every evaluation (a rung per eval interval), or FIFO
    (a strategy without early stopping, or a single evaluation); under a budget whose plan
    halves, the plan's successive halving (halving.py)."""
    spec = config.spec
    if config.plan is not None and config.plan.halving:
        from gan_search.search.halving import PlanHyperBand

        return PlanHyperBand(config.plan, metric="score", mode="min")
    evals = math.ceil(config.iters / config.eval_every)
    if config.strategy.scheduler == Scheduler.ASHA and evals > 1:
        return BaselineASHA(time_attr="training_iteration",
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


def _run_config(name: str, storage: str, callbacks: list, keep: int = 1) -> Any:
    """``keep``: best checkpoints kept per trial, besides the latest (PBT wants 3 or more:
    a member copies another's latest while newer ones arrive)."""
    return tune.RunConfig(
        name=name, storage_path=storage, verbose=0, stop=CollapseStopper(), callbacks=callbacks,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=keep, checkpoint_score_attribute="fid_lite",
            checkpoint_score_order="min"),  # the best ones (plus the latest, for resume)
        # a trial whose node dies is retried from its latest checkpoint (3 times at most);
        # a trial's own errors are reported by the trial and never reach this
        failure_config=tune.FailureConfig(max_failures=3))


def study_about(config: SearchConfig) -> dict[str, Any]:
    """What the search is, for a reader of its stored study."""
    return {"space": config.spec.name, "strategy": config.strategy, "seed": config.seed,
            "trials": config.trials, "iters": config.iters, "data": config.data_source}


def search_tuner(config: SearchConfig, trainable: Any, storage: str, callbacks: list) -> Any:
    """The search: its stored Optuna study (the baseline first; stopped trials told as
    pruned: searcher.py), ASHA, the collapse stopper; or, for the ``pbt`` strategy, PBT
    over a population."""
    import optuna

    if config.strategy == Strategy.PBT:
        return pbt_tuner(config, trainable, storage, callbacks)

    from gan_search.search.searcher import StudySearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    keys, modes = objectives(config)
    searcher = StudySearch(
        metric=keys if len(keys) > 1 else keys[0], mode=modes if len(modes) > 1 else modes[0],
        sampler=build_sampler(config), storage_url=study.url_of(config), study_name=config.name,
        baseline=config.baseline_point(),  # evaluated first; also seeds TPE
        metric_names=list(config.spec.objectives), about=study_about(config))
    return tune.Tuner(
        trainable,
        param_space=tune_space(config.searched),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=build_scheduler(config),
                                    num_samples=config.trials,
                                    # a halving plan's bracket needs all its trials at once
                                    # (halving.py; Ray lets this many be pending): the
                                    # resources cap how many train
                                    max_concurrent_trials=config.trials if config.plan is not
                                    None and config.plan.halving else config.concurrency,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=_run_config(config.name, storage, callbacks))


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
    from gan_search.search.population import PopulationStudy

    members = population(config)
    recorder = PopulationStudy(config, members, OptunaSearch.convert_search_space(
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
        run_config=_run_config(config.name, storage, [*callbacks, recorder],
                               keep=max(3, config.spec.scheduler.perturbation_interval + 2)))


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
