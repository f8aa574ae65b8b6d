"""What a search checks and sets up before any trial starts: its name in the storage, the
data with its held-out reference and real statistics, every batch against the data, Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from ray import tune

from gan_search.core.config import SearchConfig, check_batch_fits
from gan_search.core.errors import ConfigError
from gan_search.hpo.strategies import study
from gan_search.hpo.driver.paths import search_storage


def local_gpus() -> int:
    """CUDA GPUs on this machine (what a private local Ray would have)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_new_or_resumed(config: SearchConfig, path: str, resume: bool) -> None:
    """A new search needs a new name; --resume needs an existing one."""
    exists = tune.Tuner.can_restore(path) if "://" in path else Path(path).exists()
    if resume and not exists:
        raise ConfigError(f"--resume: no search {config.name!r} in {search_storage(config)}")
    if not resume and exists:
        raise ConfigError(f"a search named {config.name!r} already exists in "
                          f"{search_storage(config)}; use --resume to continue it or another --name")
    url = study.url_of(config)
    if not resume and study.exists(url, config.name):
        raise ConfigError(f"the Optuna storage {url} already holds a study named "
                          f"{config.name!r}; use --resume to continue that search or another --name")


def reference(config: SearchConfig) -> tuple[Any, Any]:
    """The data splits and the Evaluator with the held-out reference's real statistics
    (computed once, cached); trials train on ``splits.train`` only."""
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics import Evaluator

    # the trials' geometry: the space's, or what --set image_size / channels asked for
    splits = load_splits(config.data_source, config.image_size, config.channels,
                         config.data_options, config.eval_samples)
    return splits, Evaluator.for_splits(splits, config.eval_samples)


def check_batch(config: SearchConfig, images: int) -> None:
    """Every trial's batch must fit the training images (checked before any trial starts)."""
    sizes = [config.base_values().get("batch_size", 64)]
    param = config.searched.get("batch_size")
    if param is not None:
        sizes.append(max(param.values) if param.kind == "choice" else param.high)
    check_batch_fits(max(sizes), images, config.data_source)


def connect(address: str | None) -> None:
    """Start the private local Ray (no --address) or join the cluster at ``address`` (already
    checked by ``cluster.join_address``)."""
    if ray.is_initialized():
        return
    try:
        # no --address: a private local Ray ("local"), never a cluster that happens to be
        # running on this machine
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(f"--address {address}: could not connect to Ray: "
                          f"{' '.join(str(err).split())[:300]}") from None
