"""The search's Tuner by its strategy (one table), and the confirmation's Tuner: the
winners retrained over fresh seeds in the search's folder."""

from __future__ import annotations

from typing import Any, Callable

from ray import tune
from ray.tune.schedulers import FIFOScheduler

from gan_search.core.config import SearchConfig
from gan_search.core.settings import CONFIRM_KEY
from gan_search.core.vocabulary import Strategy
from gan_search.hpo.driver.paths import CONFIRM_DIR
from gan_search.hpo.strategies.pbt import pbt_tuner
from gan_search.hpo.strategies.sampled import sampled_tuner
from gan_search.hpo.strategies.tuning import run_config, trial_dirname

# strategy -> its Tuner (sampler, scheduler and Tuner of the others: sampled.py, by the
# strategy's Sampler and Scheduler)
TUNERS: dict[Strategy, Callable[..., Any]] = {Strategy.PBT: pbt_tuner}


def search_tuner(config: SearchConfig, trainable: Any, storage: str, callbacks: list) -> Any:
    """The search's Tuner: PBT over a population, or Optuna's proposals (sampled.py)."""
    return TUNERS.get(config.strategy, sampled_tuner)(config, trainable, storage, callbacks)


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
        run_config=run_config(CONFIRM_DIR, search_path, callbacks))
