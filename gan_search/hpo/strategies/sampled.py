"""The strategies whose trials Optuna proposes (``random``, ``tpe``, ``gp``, each alone or
with ``-asha``): a StudySearch over the search's stored Optuna study (TPE, GP or random;
one objective or two for a Pareto front; the baseline evaluated first; a trial ASHA stopped
told to Optuna as pruned: searcher.py, study.py) + ASHA on the first objective (never
stopping the baseline), or a budget's successive halving (halving.py), or no early
stopping + the collapse stopper -> trials with their resources.
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from gan_search.core.config import SearchConfig
from gan_search.core.results import score_keys
from gan_search.core.vocabulary import Sampler, Scheduler
from gan_search.hpo.strategies import study
from gan_search.hpo.strategies.tuning import (BaselineAware, run_config, study_about,
                                                 trial_dirname, tune_space)


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
        from gan_search.hpo.strategies.halving import PlanHyperBand

        return PlanHyperBand(config.plan, metric="score", mode="min")
    evals = math.ceil(config.iters / config.eval_every)
    if config.strategy.scheduler == Scheduler.ASHA and evals > 1:
        return BaselineASHA(time_attr="training_iteration",
                            metric="score", mode="min", max_t=evals,
                            grace_period=min(spec.scheduler.grace_period, evals),
                            reduction_factor=spec.scheduler.reduction_factor)
    return FIFOScheduler()


def sampled_tuner(config: SearchConfig, trainable: Any, storage: str, callbacks: list) -> Any:
    """The search: its stored Optuna study (the baseline first; stopped trials told as
    pruned: searcher.py), ASHA or a budget's halving, the collapse stopper."""
    import optuna

    from gan_search.hpo.strategies.searcher import StudySearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    keys = score_keys(config.spec.objectives)
    modes = ["min"] * len(keys)
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
        run_config=run_config(config.name, storage, callbacks))
