"""A finished (or interrupted) Tune run as the result model: one ``TrialRow`` per trial,
with its status, its best checkpoint, the baseline marked and the Pareto front."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune

from gan_search.core.config import SearchConfig
from gan_search.core.results import (SearchOutcome, TrialRow, best_checkpoint_of,
                                     checkpoint_uri, pareto_front, score_keys, trial_status)
from gan_search.core.settings import TrialSettings, settings_of
from gan_search.core.vocabulary import ENDED, Role, Status


def outcome(config: SearchConfig, path: str, grid: Any, started: float) -> SearchOutcome:
    """The search's trials as rows: statuses, the baseline marked, the Pareto front."""
    keys = score_keys(config.spec.objectives)
    rows = trial_rows(grid, config, saved_trial_states(path))
    if len(keys) > 1:
        pareto_front(rows, keys)
    done = sum(r.status in ENDED for r in rows)
    return SearchOutcome(config.name, path, rows, interrupted=done < config.trials,
                         seconds=time.perf_counter() - started, score_keys=keys)


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


def trial_rows(grid: Any, config: SearchConfig, states: dict[str, str]) -> list[TrialRow]:
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        error = result.error
        params = settings_of(result.config or {})
        best = best_checkpoint_of(result.best_checkpoints or [], metrics)
        # the folder name (trial_<id>, see trial_dirname) is unique per trial, even for a
        # trial whose actor died and whose result carries no metrics
        trial_id = Path(result.path).name.removeprefix("trial_") if result.path else \
            str(metrics.get("trial_id", "?"))
        status = trial_status(metrics, error)
        if states.get(trial_id, "TERMINATED") not in ("TERMINATED", "ERROR"):
            status = Status.INTERRUPTED
        rows.append(TrialRow(
            trial_id=trial_id, status=status, params=params,
            metrics={k: v for k, v in metrics.items() if k not in ("config",)},
            path=result.path, checkpoint=checkpoint_uri(best) if best is not None else None,
            baseline=TrialSettings.of(result.config or {}).role == Role.BASELINE,
            error=" ".join(str(error).split())[:300] if error else metrics.get("message")))
    return rows
