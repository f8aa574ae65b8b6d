"""Builds and runs the Tuner for a search; resume; the leaderboard.

Space -> Tune search space (inclusive YAML bounds become Tune's exclusive integer
upper bound + 1, which OptunaSearch turns back into Optuna's inclusive bound) ->
OptunaSearch (TPE; one objective or two for a Pareto front) + ASHA on FID-lite +
the collapse stopper -> trials with their resources -> results.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

# Ray's own console output is replaced by ProgressView; these must be set before ray loads.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune import Stopper  # noqa: E402

from gan_search import cluster  # noqa: E402
from gan_search.config import SearchConfig  # noqa: E402
from gan_search.errors import ConfigError  # noqa: E402
from gan_search.files import write_text_atomic  # noqa: E402
from gan_search.placement import Placement, place_trials  # noqa: E402
from gan_search.report import (ProgressView, SearchOutcome, TrialRow, leaderboard,  # noqa: E402,F401
                               pareto_front)
from gan_search import search_names  # noqa: E402
from gan_search.search_names import tune_root  # noqa: E402
from gan_search.trainable import trial_status  # noqa: E402
from gan_search.space import Param  # noqa: E402



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
    """Result keys and modes the searcher optimises."""
    keys = {"fid_lite": "score", "collapse": "score_collapse", "kid": "kid"}
    names = config.spec.objectives
    return [keys[n] for n in names], ["min"] * len(names)


def storage_root(config: SearchConfig) -> str:
    """Tune's storage: --storage (s3://... or a shared folder), else <runs-dir>/tune."""
    return search_names.storage_root(config.runs_dir, config.storage)


def summary_dir(config: SearchConfig) -> Path:
    """Local folder for leaderboard.json: the experiment folder when storage is local."""
    root = storage_root(config)
    if "://" in root:
        return tune_root(config.runs_dir) / config.name
    return Path(root) / config.name


def search_params(config: SearchConfig, placement: Placement | None = None) -> dict[str, Any]:
    """The search's settings, as logged on the MLflow parent run."""
    spec = config.spec
    params: dict[str, Any] = {
        "space": spec.name, "data.source": config.data_source, "data.size": config.image_size,
        "data.channels": config.channels, "trials": config.trials, "iters": config.iters,
        "eval_every": config.eval_every, "eval_samples": config.eval_samples,
        "concurrency": config.concurrency, "seed": config.seed,
        "objectives": list(spec.objectives), "searched": sorted(config.searched),
        "scheduler": config.scheduler or spec.scheduler.kind, "grace_period": spec.scheduler.grace_period,
        "reduction_factor": spec.scheduler.reduction_factor,
        "collapse_threshold": spec.scheduler.collapse_threshold,
        "collapse_patience": spec.scheduler.collapse_patience,
        "resources.cpu": spec.resources.cpu, "resources.gpu": spec.resources.gpu,
        "device": config.device, "trial_resources": placement.describe() if placement else "",
        "sampler": f"optuna-{config.sampler}", "address": config.address or "local"}
    params.update({f"set.{k}": v for k, v in config.fixed.items()})
    if config.data_options:
        params["data.options"] = json.dumps(dict(config.data_options), default=str)
    params["base"] = config.base_values()  # the children's shared settings (not a parent param)
    return params


def run_search(config: SearchConfig, resume: bool = False, callbacks: list | None = None,
               log: Callable[[str], None] = print, tracking_uri: str | None = None,
               track: bool = True) -> SearchOutcome:
    """Run (or resume) a search, recorded in MLflow, and return its trials' outcomes."""
    from gan_search import tracking

    # --address: the head found, reachable and accepting our token, or one line (bounded)
    address = cluster.join_address(config.address) if config.address else None
    placement = place_trials(config.spec.resources, config.device, config.address is not None,
                             0 if config.address else local_gpus())
    if track:
        tracking.check_store(config.runs_dir, tracking_uri)
    path = f"{storage_root(config)}/{config.name}"
    _check_name(config, path, resume)
    splits, evaluator = _reference(config)
    check_batch(config, len(splits.train.images))
    connect(address)
    if placement.note:
        log(f"note: {placement.note}")
    trainable = _trainable(config, placement, splits.train, evaluator)
    keys, modes = objectives(config)
    started = time.perf_counter()
    view = ProgressView(config.trials, log=log, cluster=config.address is not None)
    tracker = None
    if track:
        tracker = tracking.MlflowTracker(config.runs_dir, tracking_uri, config.spec.name,
                                         config.name, search_params(config, placement),
                                         config.spec.path)
        tracker.start()
    searcher = None
    if resume:
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
        tracker = tracking.RESTORED.pop(config.name, tracker)  # the instance Tune restored
    else:
        extra = [tracker] if tracker else []
        tuner, searcher = _new_tuner(config, trainable, keys, modes,
                                     [view, *extra, *(callbacks or [])])
    grid = tuner.fit()
    rows = _rows(grid, config, saved_trial_states(path))
    if len(keys) > 1:
        pareto_front(rows, keys)
    done = sum(r.status in ("finished", "stopped", "collapsed", "diverged", "failed") for r in rows)
    outcome = SearchOutcome(config.name, path, rows, interrupted=done < config.trials,
                            seconds=time.perf_counter() - started, objectives=keys,
                            study=None if searcher is None else searcher._ot_study)
    summary = write_summary(outcome, config)
    if tracker is not None:
        tracker.finish(rows, leaderboard(outcome, sorted(config.searched)), str(summary), keys,
                       outcome.interrupted, outcome.seconds)
        outcome.logging_seconds = tracker.seconds
        outcome.parent_run_id = tracker.parent_id
    return outcome


def local_gpus() -> int:
    """CUDA GPUs on this machine (what a private local Ray would have)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _check_name(config: SearchConfig, path: str, resume: bool) -> None:
    """A new search needs a new name; --resume needs an existing one."""
    exists = tune.Tuner.can_restore(path) if "://" in path else Path(path).exists()
    if resume and not exists:
        raise ConfigError(f"--resume: no search {config.name!r} in {storage_root(config)}")
    if not resume and exists:
        raise ConfigError(f"a search named {config.name!r} already exists in "
                          f"{storage_root(config)}; use --resume to continue it or another --name")


def _reference(config: SearchConfig) -> tuple[Any, Any]:
    """The data splits and the Evaluator with the held-out reference's real statistics
    (computed once, cached); trials train on ``splits.train`` only."""
    from gan_search.data import load_splits
    from gan_search.metrics import Evaluator

    # the trials' geometry: the space's, or what --set image_size / channels asked for
    splits = load_splits(config.data_source, config.image_size, config.channels,
                         config.data_options, config.eval_samples)
    n = min(config.eval_samples, len(splits.reference.images))
    return splits, Evaluator(splits.reference, n=n, dataset_key=splits.reference_key,
                             train=splits.train, train_key=splits.train_key)


def check_batch(config: SearchConfig, images: int) -> None:
    """Every trial's batch must fit the training images (checked before any trial starts)."""
    sizes = [config.base_values().get("batch_size", 64)]
    param = config.searched.get("batch_size")
    if param is not None:
        sizes.append(max(param.values) if param.kind == "choice" else param.high)
    if max(sizes) > images:
        raise ConfigError(f"batch_size={max(sizes)} exceeds the {images} training images of "
                          f"{config.data_source}; use --set batch_size=N with a smaller N")


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


def _trainable(config: SearchConfig, placement: Placement, data: Any, evaluator: Any) -> Any:
    """The trial function with its shared inputs (through the object store) and resources."""
    from gan_search.trainable import run_trial

    spec = config.spec
    settings = {"base": config.base_values(), "cpu": placement.cpu, "gpu": placement.gpu,
                "collapse_threshold": spec.scheduler.collapse_threshold,
                "collapse_patience": spec.scheduler.collapse_patience}
    return tune.with_resources(
        tune.with_parameters(run_trial, images=data.images, evaluator_state=evaluator.state(),
                             settings=settings), placement.resources())


def build_sampler(config: SearchConfig) -> Any:
    """Optuna's sampler: TPE (multivariate, seeded, random for the first third of the
    trials up to 10), or random search (--sampler random, the baseline to beat)."""
    import optuna

    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    startup = min(10, max(2, config.trials // 3))  # random trials before TPE models the space
    return optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup,
                                      multivariate=True)


def build_scheduler(config: SearchConfig) -> Any:
    """ASHA on the trial's score at every evaluation (a rung per eval interval), or FIFO
    (scheduler none, or a single evaluation)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    spec = config.spec
    evals = math.ceil(config.iters / config.eval_every)
    if (config.scheduler or spec.scheduler.kind) == "asha" and evals > 1:
        return ASHAScheduler(time_attr="training_iteration", metric="score", mode="min",
                             max_t=evals, grace_period=min(spec.scheduler.grace_period, evals),
                             reduction_factor=spec.scheduler.reduction_factor)
    return FIFOScheduler()


def _new_tuner(config: SearchConfig, trainable: Any, keys: list[str], modes: list[str],
               callbacks: list) -> Any:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    searcher = OptunaSearch(
        metric=keys if len(keys) > 1 else keys[0], mode=modes if len(modes) > 1 else modes[0],
        sampler=build_sampler(config), study_name=config.name, seed=config.seed)
    return tune.Tuner(
        trainable,
        param_space=tune_space(config.searched),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=build_scheduler(config),
                                    num_samples=config.trials,
                                    max_concurrent_trials=config.concurrency,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=config.name, storage_path=storage_root(config), verbose=0,
            stop=CollapseStopper(), callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="fid_lite",
                checkpoint_score_order="min"),  # the best one (plus the latest, for resume)
            # a trial whose node dies is retried from its latest checkpoint (3 times at most);
            # a trial's own errors are reported by the trial and never reach this
            failure_config=tune.FailureConfig(max_failures=3)),
    ), searcher


def trial_dirname(trial: Any) -> str:
    """Short trial folders (Tune's default repeats every parameter in the name)."""
    return f"trial_{trial.trial_id}"


def saved_trial_states(path: str) -> dict[str, str]:
    """Tune's saved state of each trial (TERMINATED, ERROR, PENDING...): after an interrupt,
    the trials Tune will run again on resume are the ones not TERMINATED or ERROR."""
    import logging

    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns that per-trial result files are off: they are
    try:
        return {t.trial_id: t.status for t in tune.ExperimentAnalysis(path).trials}
    except (OSError, ValueError, RuntimeError):
        return {}
    finally:
        quiet.setLevel(level)


def _rows(grid: Any, config: SearchConfig, states: dict[str, str]) -> list[TrialRow]:
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        error = result.error
        params = {k: v for k, v in (result.config or {}).items()}
        best = None
        if result.best_checkpoints:
            best = checkpoint_uri(min(result.best_checkpoints,
                                      key=lambda pair: pair[1].get("fid_lite", math.inf))[0],
                                  storage_root(config))
        # the folder name (trial_<id>, see trial_dirname) is unique per trial, even for a
        # trial whose actor died and whose result carries no metrics
        trial_id = Path(result.path).name.removeprefix("trial_") if result.path else \
            str(metrics.get("trial_id", "?"))
        status = trial_status(metrics, error)
        if states.get(trial_id, "TERMINATED") not in ("TERMINATED", "ERROR"):
            status = "interrupted"
        rows.append(TrialRow(
            trial_id=trial_id, status=status, params=params,
            metrics={k: v for k, v in metrics.items() if k not in ("config",)},
            path=result.path, checkpoint=best,
            error=" ".join(str(error).split())[:300] if error else metrics.get("message")))
    return rows


def checkpoint_uri(checkpoint: Any, root: str) -> str:
    """A checkpoint's location as the user gave the storage: a folder, or a URI with its
    scheme (Tune's checkpoint paths on s3://... storage carry none)."""
    scheme, sep, _ = root.partition("://")
    if not sep or scheme == "file":
        return checkpoint.path
    return f"{scheme}://{checkpoint.path.lstrip('/')}"


class CollapseStopper(Stopper):
    """Stops a trial that reports ``collapsed`` (collapse above the threshold for
    ``patience`` evaluations in a row; the rule lives in the trial, see trainable.py)."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return bool(result.get("collapsed", False))

    def stop_all(self) -> bool:
        return False


def write_summary(outcome: SearchOutcome, config: SearchConfig) -> Path:
    """leaderboard.json beside Tune's state in the experiment folder."""
    path = summary_dir(config) / "leaderboard.json"
    write_text_atomic(path, json.dumps({
        "name": outcome.name, "space": config.spec.name, "objectives": outcome.objectives,
        "seconds": outcome.seconds, "interrupted": outcome.interrupted,
        "trials": [{"trial_id": r.trial_id, "status": r.status, "params": r.params,
                    "metrics": {k: v for k, v in r.metrics.items()
                                if isinstance(v, (int, float, str, bool)) or v is None},
                    "checkpoint": r.checkpoint, "pareto": r.pareto, "error": r.error}
                   for r in outcome.rows]}, indent=2, default=str))
    return path
