"""A search from start to end: checks and data (driver/prepare.py), placement, the search's
Tuner (strategies/tuners.py), the confirmation of its winners over fresh seeds, what
mattered (outcome/analysis.py), the summary files (outcome/summary.py); resume
(driver/restore.py).

A tracker (MLflow, in ``gan_search.tracking``; wired by ``gan_search.app``) is handed in
as a factory: the search knows only the small ``Tracker`` interface below, so no arrow runs
from the search up to the tracking layer.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Protocol

# Ray's own console output is replaced by ProgressView; these must be set before ray loads.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from gan_search.core.config import SearchConfig  # noqa: E402
from gan_search.core.errors import ConfigError  # noqa: E402
from gan_search.core.results import SearchOutcome  # noqa: E402
from gan_search.core.settings import SharedSettings, objectives_of  # noqa: E402
from gan_search.core.vocabulary import ENDED, WORST, Strategy  # noqa: E402
from gan_search.hpo.driver import cluster, prepare  # noqa: E402
from gan_search.hpo.driver.paths import (ANALYSIS_DIR, CONFIRM_DIR, search_folder,
                                            search_storage)  # noqa: E402
from gan_search.hpo.driver.placement import Placement, place_trials  # noqa: E402
from gan_search.hpo.driver.progress import ProgressBoard, ProgressView  # noqa: E402
from gan_search.hpo.driver.restore import restore_tuner  # noqa: E402
from gan_search.hpo.outcome import analysis, collect, confirm  # noqa: E402
from gan_search.hpo.outcome.deliver import deliver  # noqa: E402
from gan_search.hpo.outcome.spend import Spending  # noqa: E402
from gan_search.hpo.outcome.summary import write_summary  # noqa: E402
from gan_search.hpo.strategies import study  # noqa: E402
from gan_search.hpo.strategies.tuners import confirm_tuner, search_tuner  # noqa: E402

class Tracker(Protocol):
    """What a search needs of a tracker: a Tune callback (a ``restore.Restorable``, so a
    resumed search goes on with the same record), told the outcome and the summary files
    at the end."""

    parent_id: str | None
    seconds: float  # time spent recording

    def finish(self, outcome: SearchOutcome, files: list[Path]) -> None: ...


# (the search's parameters, what its trials share, its folder) -> a started tracker
TrackerFactory = Callable[[dict[str, Any], SharedSettings, Path], Tracker]


def search_params(config: SearchConfig, placement: Placement) -> dict[str, Any]:
    """The search's own settings (the MLflow parent run's parameters)."""
    spec = config.spec
    params: dict[str, Any] = {
        "space": spec.name, "data.source": config.data_source, "data.size": config.image_size,
        "data.channels": config.channels, "trials": config.trials, "iters": config.iters,
        "eval_every": config.eval_every, "eval_samples": config.eval_samples,
        "concurrency": config.concurrency, "seed": config.seed,
        "objectives": list(spec.objectives), "searched": sorted(config.searched),
        "strategy": config.strategy, "scheduler": config.strategy.scheduler.value,
        "grace_period": spec.scheduler.grace_period,
        "reduction_factor": spec.scheduler.reduction_factor,
        "collapse_threshold": spec.scheduler.collapse_threshold,
        "collapse_patience": spec.scheduler.collapse_patience,
        "resources.cpu": spec.resources.cpu, "resources.gpu": spec.resources.gpu,
        "device": config.device, "trial_resources": placement.describe(),
        "sampler": f"optuna-{config.strategy.sampler}",
        "address": config.address or "local"}
    params.update({f"set.{k}": v for k, v in config.fixed.items()})
    if config.plan is not None:  # --budget: what it buys
        params.update({"budget": config.plan.total, "budget.rungs": list(config.plan.rungs),
                       "budget.arms": list(config.plan.arms), "budget.final": config.plan.final,
                       "budget.seeds": config.plan.seeds})
    if config.data_options:
        params["data.options"] = json.dumps(dict(config.data_options), default=str)
    return params


def shared_settings(config: SearchConfig, placement: Placement) -> SharedSettings:
    """What every trial of the search shares (handed to each through the object store)."""
    spec = config.spec
    return SharedSettings(base=config.base_values(), cpu=placement.cpu, gpu=placement.gpu,
                          objectives=objectives_of(spec.objectives),
                          collapse_threshold=spec.scheduler.collapse_threshold,
                          collapse_patience=spec.scheduler.collapse_patience)


def run_search(config: SearchConfig, resume: bool = False, callbacks: list | None = None,
               log: Callable[[str], None] = print, live: bool = False,
               tracker: TrackerFactory | None = None) -> SearchOutcome:
    """Run (or resume) a search, confirm its winners, say what mattered, write its summary
    files; return the outcome. ``live``: redraw the progress line in place (a terminal);
    ``tracker``: records the search (None: no records beyond the summary files)."""
    # --address: the head found, reachable and accepting our token, or one line (bounded)
    address = cluster.join_address(config.address) if config.address else None
    placement = place_trials(config.spec.resources, config.device, config.address is not None,
                             0 if config.address else prepare.local_gpus())
    path = f"{search_storage(config)}/{config.name}"
    prepare.check_new_or_resumed(config, path, resume)
    splits, evaluator = prepare.reference(config)
    prepare.check_batch(config, len(splits.train.images))
    prepare.connect(address)
    if placement.note:
        log(f"note: {placement.note}")
    for line in config.plan.describe() if config.plan is not None else ():
        log(line)
    log(f"scores: FID-lite ({evaluator.extractor_name}, {evaluator.generated:,} generated images, "
        f"with its noise) and collapse (N={evaluator.n}) against {splits.description}; trials "
        f"train on the other {len(splits.train.images):,} images")
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()  # the live line's source
    shared = shared_settings(config, placement)
    trainable = _trainable(placement, splits.train, evaluator, board, shared)
    started = time.perf_counter()
    tracking = tracker(search_params(config, placement), shared, search_folder(config)) \
        if tracker else None
    view = ProgressView(config.trials, log=log, cluster=address is not None, board=board,
                        live=live, iters=config.iters)
    fitting, spending = time.perf_counter(), Spending()
    grid, in_effect = _fit(path, resume, trainable, lambda cbs: search_tuner(
        config, trainable, search_storage(config), cbs),
        [view, *(callbacks or []), tracking, spending])
    view, tracking = in_effect(view), in_effect(tracking)  # on resume: the restored ones
    outcome = collect.outcome(config, path, grid, started)
    outcome.fit_seconds = time.perf_counter() - fitting
    spending = in_effect(spending)
    if not outcome.interrupted and config.confirm > 0:
        tracking, spending = _confirm(config, trainable, outcome, resume, view, tracking,
                                      spending)
    outcome.spent = spending.iters
    if not outcome.interrupted:
        found = deliver(outcome, search_folder(config))
        outcome.delivered = str(found) if found else None
    ray.kill(board)  # a driver that runs several searches keeps no board of an ended one
    _what_mattered(config, outcome, log)
    outcome.seconds = time.perf_counter() - started
    files = write_summary(outcome, config)
    if tracking is not None:
        tracking.finish(outcome, files)
        outcome.logging_seconds = tracking.seconds
        outcome.parent_run_id = tracking.parent_id
    return outcome


def _fit(path: str, resume: bool, trainable: Any, new_tuner: Callable[[list], Any],
         callbacks: list) -> tuple[Any, Callable[[Any], Any]]:
    """A new Tuner's fit, or the saved one's, continued. Returns the result grid and
    ``in_effect``: the callback that served in place of each given one (on resume, the one
    Tune restored, which took over the given one's live parts: restore.py)."""
    callbacks = [c for c in callbacks if c is not None]  # e.g. no tracker
    if resume and tune.Tuner.can_restore(path):
        tuner, in_effect = restore_tuner(path, trainable, callbacks)
    else:
        tuner, in_effect = new_tuner(callbacks), lambda c: c
    return tuner.fit(), in_effect


def _confirm(config: SearchConfig, trainable: Any, outcome: SearchOutcome, resume: bool,
             search_view: ProgressView, tracking: Tracker | None,
             spending: Spending) -> tuple[Tracker | None, Spending]:
    """Retrain the top configurations (and the baseline) with fresh seeds at the full
    budget (under a budget: the best proposal of the last rung and the baseline, for the plan's
    final length); rank them by the mean of the first objective (confirm.py). Returns the
    tracker and the counter in effect (on resume, the ones Tune restored with it)."""
    candidates = confirm.pick_candidates(
        outcome.rows, config.confirm, WORST[config.spec.objectives[0]],
        reached=config.iters if config.plan is not None else 0)
    if not candidates:
        search_view.say("confirmation: no trial trained to its end; nothing to confirm")
        return tracking, spending
    seeds = confirm.fresh_seeds(config.confirm_seeds)
    length = config.confirm_iters
    trials = confirm.trial_configs(candidates, seeds, length if config.plan else None)
    path = f"{outcome.path}/{CONFIRM_DIR}"
    names = ", ".join(c.trial_id + (" baseline" if c.baseline else "") for c in candidates)
    search_view.say(f"confirming {len(candidates)} configurations ({names}) with fresh seeds "
                    f"{seeds}: {len(trials)} trials of {length} iterations")
    view = ProgressView(len(trials), log=search_view.log, cluster=config.address is not None,
                        board=search_view.board, live=search_view.live, iters=length,
                        key="confirm-progress")
    grid, in_effect = _fit(path, resume, trainable, lambda cbs: confirm_tuner(
        config, trainable, outcome.path, cbs, trials), [view, tracking, spending])
    tracking, spending = in_effect(tracking), in_effect(spending)
    outcome.confirm_rows = collect.trial_rows(grid, config, collect.saved_trial_states(path))
    if sum(r.status in ENDED for r in outcome.confirm_rows) < len(trials):  # Ctrl-C
        outcome.interrupted = True
        return tracking, spending
    confirm.assign_runs(candidates, outcome.confirm_rows)
    outcome.confirmation = confirm.ranked(candidates)
    return tracking, spending


def _what_mattered(config: SearchConfig, outcome: SearchOutcome,
                   log: Callable[[str], None]) -> None:
    """Optuna's importances and plots of the study (from its storage); for PBT, the
    plot of the winner's schedule (its study holds the population Optuna proposed, whose
    starting settings say little once members copy each other: no importances)."""
    if config.strategy == Strategy.PBT:
        winner = outcome.confirmation[0] if outcome.confirmation else None
        row = outcome.best if winner is None else next(
            (r for r in outcome.rows if r.trial_id == winner.trial_id), None)
        if row is not None:
            outcome.plots = analysis.save_schedule_plot(
                row.trial_id, row.metrics, config.iters, search_folder(config) / ANALYSIS_DIR)
        return
    try:
        outcome.study = study.load(study.url_of(config), config.name)
    except (ConfigError, RuntimeError, OSError, ValueError) as err:
        log(f"note: no importances: the Optuna study could not be read ({err})")
        return
    outcome.importances = analysis.importances(outcome.study)
    outcome.plots = analysis.save_plots(outcome.study, outcome.score_keys,
                                        search_folder(config) / ANALYSIS_DIR,
                                        with_importances=bool(outcome.importances))


def _trainable(placement: Placement, data: Any, evaluator: Any, board: Any,
               shared: SharedSettings) -> Any:
    """The trial function with its shared inputs (through the object store) and resources."""
    from gan_search.hpo.trainable import run_trial

    return tune.with_resources(
        tune.with_parameters(run_trial, images=data.images, evaluator_state=evaluator.state(),
                             settings=shared, board=board), placement.resources())
