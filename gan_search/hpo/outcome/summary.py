"""The files a search leaves beside Tune's state, written by the search whether MLflow
tracking is on or off (the tracker only copies them onto the parent run):

- ``leaderboard.json``: every trial and the confirmation (written atomically);
- ``summary/leaderboard.txt``: the table the search printed;
- ``summary/pareto_front.json`` (two objectives) and ``summary/importances.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gan_search.core.config import SearchConfig
from gan_search.core.files import write_text_atomic
from gan_search.core.results import SearchOutcome, TrialRow
from gan_search.hpo.driver.paths import LEADERBOARD_FILE, search_folder
from gan_search.hpo.outcome.report import leaderboard


def write_summary(outcome: SearchOutcome, config: SearchConfig) -> list[Path]:
    """Every summary file of an ended (or interrupted) search; their paths, the
    leaderboard.json first."""
    folder = search_folder(config)
    files = [folder / LEADERBOARD_FILE, folder / "summary" / "leaderboard.txt"]
    write_text_atomic(files[0], json.dumps(_summary_json(outcome, config), indent=2,
                                           default=str))
    write_text_atomic(files[1], leaderboard(outcome, sorted(config.searched)) + "\n")
    if len(outcome.score_keys) > 1:
        front = [{"trial_id": r.trial_id, **{k: r.metrics.get(k) for k in outcome.score_keys}}
                 for r in outcome.rows if r.pareto]
        files.append(folder / "summary" / "pareto_front.json")
        write_text_atomic(files[-1], json.dumps(front, indent=2))
    if outcome.importances:
        files.append(folder / "summary" / "importances.json")
        write_text_atomic(files[-1], json.dumps(dict(outcome.importances), indent=2))
    return files


def _summary_json(outcome: SearchOutcome, config: SearchConfig) -> dict[str, Any]:
    return {
        "name": outcome.name, "space": config.spec.name,
        "objectives": list(config.spec.objectives), "score_keys": outcome.score_keys,
        "seconds": outcome.seconds, "interrupted": outcome.interrupted,
        "data": data_of(config),
        "best": outcome.best.trial_id if outcome.best else None,
        "trials": [_row_json(r) for r in outcome.rows],
        "confirmation": None if outcome.confirmation is None else [
            {"trial_id": c.trial_id, "baseline": c.baseline, "mean": c.mean, "std": c.spread,
             "runs": c.runs} for c in outcome.confirmation],
        "confirm_trials": [_row_json(r) for r in outcome.confirm_rows],
        "importances": dict(outcome.importances),
        "budget": None if config.plan is None else {
            "total": config.plan.total, "planned": config.plan.iters, "rungs": config.plan.rungs,
            "arms": config.plan.arms, "final": config.plan.final, "seeds": config.plan.seeds},
        "trained_iters": outcome.spent, "delivered": outcome.delivered,
        "plots": [str(p) for p in outcome.plots]}


def data_of(config: SearchConfig) -> dict[str, Any]:
    """What a search's scores were against (its data, at the trials' geometry, and N)."""
    return {"source": config.data_source, "options": dict(config.data_options),
            "image_size": config.image_size, "channels": config.channels,
            "eval_samples": config.eval_samples}


def _row_json(row: TrialRow) -> dict[str, Any]:
    return {"trial_id": row.trial_id, "status": row.status, "params": row.params,
            "metrics": {k: v for k, v in row.metrics.items()
                        if isinstance(v, (int, float, str, bool)) or v is None},
            "checkpoint": row.checkpoint, "pareto": row.pareto, "baseline": row.baseline,
            "error": row.error}
