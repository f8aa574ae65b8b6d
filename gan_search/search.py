"""A search from start to end: checks, placement, the data and its held-out reference,
Ray, the search's Tuner (tuning.py), the confirmation of its winners over fresh seeds, what
mattered (analysis.py), the summary and the MLflow records (tracking/); resume.
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

from gan_search import analysis, cluster, confirm, search_names  # noqa: E402
from gan_search.config import SearchConfig  # noqa: E402
from gan_search.errors import ConfigError  # noqa: E402
from gan_search.files import write_text_atomic  # noqa: E402
from gan_search.placement import Placement, place_trials  # noqa: E402
from gan_search.report import (RESTORED_VIEWS, ProgressBoard, ProgressView,  # noqa: E402,F401
                               SearchOutcome, TrialRow, leaderboard, pareto_front)
from gan_search.search_names import tune_root  # noqa: E402
from gan_search.trainable import checkpoint_uri, trial_status  # noqa: E402
from gan_search.tuning import (CONFIRM_DIR, confirm_tuner, objectives,  # noqa: E402
                               same_config, search_tuner)


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
               track: bool = True, live: bool = False) -> SearchOutcome:
    """Run (or resume) a search, confirm its winners, say what mattered; record it all in
    MLflow, and return the outcome. ``live``: redraw the progress line in place (a terminal)."""
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
    log(f"scores: FID-lite ({evaluator.extractor_name}) and collapse on N={evaluator.n} against "
        f"{splits.description}; trials train on the other {len(splits.train.images):,} images")
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()  # the live line's source
    trainable = _trainable(config, placement, splits.train, evaluator, board)
    started = time.perf_counter()
    tracker = None
    if track:
        tracker = tracking.MlflowTracker(config.runs_dir, tracking_uri, config.spec.name,
                                         config.name, search_params(config, placement),
                                         config.spec.path, pending_dir=summary_dir(config),
                                         baseline=config.baseline_point(), log=log)
        tracker.start()
    view = ProgressView(config.trials, log=log, cluster=address is not None, board=board,
                        live=live, iters=config.iters)
    fitting = time.perf_counter()
    grid, tracker = _fit(path, resume, trainable, lambda cbs: search_tuner(
        config, trainable, storage_root(config), cbs), [view, *(callbacks or [])], tracker)
    outcome = _outcome(config, path, grid, started)
    outcome.fit_seconds = time.perf_counter() - fitting
    if not outcome.interrupted and config.confirm > 0:
        tracker = _confirm(config, trainable, outcome, resume, view, tracker)
    ray.kill(board)  # a driver that runs several searches keeps no board of an ended one
    _what_mattered(config, outcome, log)
    outcome.seconds = time.perf_counter() - started
    summary = write_summary(outcome, config)
    if tracker is not None:
        tracker.finish(outcome, leaderboard(outcome, sorted(config.searched)), str(summary))
        outcome.logging_seconds = tracker.seconds
        outcome.parent_run_id = tracker.parent_id
    return outcome


def _fit(path: str, resume: bool, trainable: Any, new_tuner: Callable[[list], Any],
         callbacks: list, tracker: Any) -> tuple[Any, Any]:
    """A new Tuner's fit, or the saved one's, continued; on resume Tune restores the
    callbacks it saved, and the tracker among them goes on recording."""
    from gan_search import tracking

    if resume and tune.Tuner.can_restore(path):
        RESTORED_VIEWS.clear()
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
        for restored in RESTORED_VIEWS:  # Tune's copy of our view: give it our output back
            restored.attach(callbacks[0].log, callbacks[0].board, callbacks[0].live)
        if tracker is not None:
            tracker = tracking.RESTORED.pop(tracker.search_name, tracker)
    else:
        tuner = new_tuner([*callbacks, *([tracker] if tracker else [])])
    return tuner.fit(), tracker


def _outcome(config: SearchConfig, path: str, grid: Any, started: float) -> SearchOutcome:
    """The search's trials as rows: statuses, the baseline marked, the Pareto front."""
    keys, _ = objectives(config)
    rows = _rows(grid, config, saved_trial_states(path))
    point = config.baseline_point()
    baseline = next((r for r in rows if point and same_config(r.params, point)), None)
    if baseline is not None:  # the first trial (Optuna evaluates the enqueued point first)
        baseline.baseline = True
    if len(keys) > 1:
        pareto_front(rows, keys)
    done = sum(r.status in ENDED for r in rows)
    return SearchOutcome(config.name, path, rows, interrupted=done < config.trials,
                         seconds=time.perf_counter() - started, objectives=keys)


ENDED = ("finished", "stopped", "collapsed", "diverged", "failed")


def _confirm(config: SearchConfig, trainable: Any, outcome: SearchOutcome, resume: bool,
             search_view: ProgressView, tracker: Any) -> Any:
    """Retrain the top configurations (and the baseline) with fresh seeds at the full
    budget; rank them by the mean of the first objective (confirm.py)."""
    candidates = confirm.pick_candidates(outcome.rows, config.confirm)
    if not candidates:
        search_view.say("confirmation: no trial trained to its end; nothing to confirm")
        return tracker
    seeds = confirm.fresh_seeds(config.confirm_seeds)
    trials = confirm.trial_configs(candidates, seeds)
    path = f"{outcome.path}/{CONFIRM_DIR}"
    names = ", ".join(c.trial_id + (" baseline" if c.baseline else "") for c in candidates)
    search_view.say(f"confirming {len(candidates)} configurations ({names}) with fresh seeds "
                    f"{seeds}: {len(trials)} trials of {config.iters} iterations")
    view = ProgressView(len(trials), log=search_view.log, cluster=config.address is not None,
                        board=search_view.board, live=search_view.live, iters=config.iters)
    grid, tracker = _fit(path, resume, trainable, lambda cbs: confirm_tuner(
        config, trainable, outcome.path, cbs, trials), [view], tracker)
    outcome.confirm_rows = _rows(grid, config, saved_trial_states(path))
    if sum(r.status in ENDED for r in outcome.confirm_rows) < len(trials):  # Ctrl-C
        outcome.interrupted = True
        return tracker
    confirm.assign_runs(candidates, outcome.confirm_rows)
    outcome.confirmation = confirm.ranked(candidates)
    return tracker


def _what_mattered(config: SearchConfig, outcome: SearchOutcome,
                   log: Callable[[str], None]) -> None:
    """Optuna's importances and plots of the study (saved with Tune's state)."""
    try:
        outcome.study = analysis.load_study(outcome.path)
    except (RuntimeError, OSError, ValueError) as err:
        log(f"note: no importances: the Optuna study could not be read ({err})")
        return
    outcome.importances = analysis.importances(outcome.study)
    outcome.plots = analysis.save_plots(outcome.study, outcome.objectives,
                                        summary_dir(config) / "analysis")


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


def _trainable(config: SearchConfig, placement: Placement, data: Any, evaluator: Any,
               board: Any) -> Any:
    """The trial function with its shared inputs (through the object store) and resources."""
    from gan_search.trainable import run_trial

    spec = config.spec
    settings = {"base": config.base_values(), "cpu": placement.cpu, "gpu": placement.gpu,
                "objectives": list(spec.objectives),
                "collapse_threshold": spec.scheduler.collapse_threshold,
                "collapse_patience": spec.scheduler.collapse_patience}
    return tune.with_resources(
        tune.with_parameters(run_trial, images=data.images, evaluator_state=evaluator.state(),
                             settings=settings, board=board), placement.resources())


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
                                      key=lambda pair: pair[1].get("fid_lite", math.inf))[0])
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


def write_summary(outcome: SearchOutcome, config: SearchConfig) -> Path:
    """leaderboard.json beside Tune's state in the experiment folder."""
    path = summary_dir(config) / "leaderboard.json"
    write_text_atomic(path, json.dumps({
        "name": outcome.name, "space": config.spec.name, "objectives": outcome.objectives,
        "seconds": outcome.seconds, "interrupted": outcome.interrupted,
        "best": outcome.best.trial_id if outcome.best else None,
        "trials": [_row_json(r) for r in outcome.rows],
        "confirmation": None if outcome.confirmation is None else [
            {"trial_id": c.trial_id, "baseline": c.baseline, "mean": c.mean, "std": c.spread,
             "runs": c.runs} for c in outcome.confirmation],
        "confirm_trials": [_row_json(r) for r in outcome.confirm_rows],
        "importances": dict(outcome.importances),
        "plots": [str(p) for p in outcome.plots]}, indent=2, default=str))
    return path


def _row_json(row: TrialRow) -> dict[str, Any]:
    return {"trial_id": row.trial_id, "status": row.status, "params": row.params,
            "metrics": {k: v for k, v in row.metrics.items()
                        if isinstance(v, (int, float, str, bool)) or v is None},
            "checkpoint": row.checkpoint, "pareto": row.pareto, "baseline": row.baseline,
            "error": row.error}
