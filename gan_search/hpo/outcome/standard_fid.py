"""A finished search's confirmation scored again with the FID and KID of papers
(``gan-search score --search NAME --standard-fid``): every fresh-seed run of every confirmed
configuration (the winner, the baseline beside it) samples N images from its best
checkpoint's generator, all from the same noise, and torch-fidelity scores them against the
first N of the search's held-out reference (``engine.metrics.standard``).

The configurations are ranked by their mean FID over the fresh seeds, the confirmation's
FID-lite mean beside it; a run without a generator (it failed or diverged before its first
checkpoint) counts as the worst, as it does in the confirmation. The table is written to
``<search folder>/confirm/standard_fid.json`` (atomically) and returned.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable

import torch

from gan_search.core.errors import ConfigError
from gan_search.core.files import write_text_atomic
from gan_search.core.results import GENERATOR_FILE, read_checkpoint_file
from gan_search.hpo.driver.paths import CONFIRM_DIR, LEADERBOARD_FILE
from gan_search.hpo.outcome.noise import TIE_SIGMAS, rank_labels

STANDARD_FID_FILE = "standard_fid.json"  # in <search folder>/confirm/
NOISE_SEED = 0  # every run samples from the same noise


def confirmation_of(folder: Path, name: str) -> dict[str, Any]:
    """The summary (leaderboard.json) of a finished search with a confirmation."""
    path = folder / LEADERBOARD_FILE
    if not path.is_file():
        raise ConfigError(f"--search {name}: no finished search at {folder} (no "
                          f"{LEADERBOARD_FILE}); check --runs-dir and --storage")
    summary = json.loads(path.read_text())
    if not summary.get("confirmation"):
        raise ConfigError(f"--search {name}: the search has no confirmation to score (it ran "
                          "with --confirm 0, was interrupted, or no trial trained to its end)")
    return summary


def score_confirmation(summary: dict[str, Any], folder: Path,
                       score: Callable[[torch.Tensor], dict[str, float]], n: int,
                       about: dict[str, Any]) -> dict[str, Any]:
    """Score every confirmation run's generator with ``score`` (uint8 images -> ``fid``,
    ``kid_standard``); the ranked table, also written beside the confirmation. ``about``:
    what the record should say of how it was scored (reference, weights)."""
    from gan_search.engine.models import load_generator
    from gan_search.engine.trainer import generate

    candidates = []
    for confirmed in summary["confirmation"]:
        runs = []
        for run in confirmed["runs"]:
            scores: dict[str, Any] = {"fid": None, "kid_standard": None}
            file = _generator_of(run.get("checkpoint"))
            if file is not None:
                generator, config, _ = load_generator(file)
                scores = score(generate(generator, config, n, NOISE_SEED))
            runs.append({"trial_id": run["trial_id"], "seed": run["seed"],
                         "status": run["status"], **scores})
        candidates.append(_summarised(confirmed, runs))
    candidates.sort(key=lambda c: (c["fid_mean"] is None, c["fid_mean"] or 0.0))
    labels = rank_labels([(_or_inf(c["fid_mean"]), _or_nan(c["fid_stderr"])) for c in candidates])
    for label, candidate in zip(labels, candidates):
        candidate["rank"] = label
    winner = summary["confirmation"][0]["trial_id"]
    table = {"search": summary["name"], "n": n, "noise_seed": NOISE_SEED, **about,
             "winner": winner, "candidates": candidates}
    write_text_atomic(folder / CONFIRM_DIR / STANDARD_FID_FILE, json.dumps(table, indent=2))
    return table


def _generator_of(checkpoint: str | None) -> Any:
    """A run's generator file, read alone from its checkpoint (a local folder, or fetched
    from remote storage, s3://...); None when the run has none."""
    if not checkpoint:
        return None
    try:
        return io.BytesIO(read_checkpoint_file(checkpoint, GENERATOR_FILE))
    except FileNotFoundError:
        return None


def _summarised(confirmed: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's runs with their mean, spread and standard error (None when a run
    had nothing to score: it counts as the worst)."""
    fids = [r["fid"] for r in runs]
    whole = bool(fids) and all(f is not None for f in fids)
    spread = statistics.stdev(fids) if whole and len(fids) > 1 else 0.0
    return {"trial_id": confirmed["trial_id"], "baseline": confirmed["baseline"],
            "fid_mean": statistics.fmean(fids) if whole else None,
            "fid_std": spread if whole else None,
            "fid_stderr": spread / math.sqrt(len(fids)) if whole and len(fids) > 1 else None,
            "kid_mean": statistics.fmean(r["kid_standard"] for r in runs) if whole else None,
            "fid_lite_mean": confirmed["mean"], "runs": runs}


def metrics_of(table: dict[str, Any]) -> dict[str, float]:
    """What the search's MLflow run records of the table: the winner's mean FID and KID
    (``standard_fid``, ``standard_kid``) and the baseline's (``..._baseline``)."""
    metrics = {}
    for candidate in table["candidates"]:
        if candidate["fid_mean"] is None:
            continue
        roles = ["_baseline"] * candidate["baseline"] + \
            [""] * (candidate["trial_id"] == table["winner"])
        for role in roles:
            metrics.update({f"standard_fid{role}": candidate["fid_mean"],
                            f"standard_kid{role}": candidate["kid_mean"]})
    return metrics


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def _or_nan(value: float | None) -> float:
    """A standard error, nan when unknown (one seed): never tied."""
    return math.nan if value is None else value


def table_lines(table: dict[str, Any]) -> list[str]:
    """The standard-FID table of a search's confirmation, best mean FID first."""
    lines = [f"standard FID/KID of the confirmation of {table['search']} (N={table['n']}, "
             f"against {table['reference']}; weights {table['weights']})",
             "rank  trial (configuration)      mean FID ± std over fresh seeds   mean KID    "
             "mean FID-lite (confirmation)"]
    for c in table["candidates"]:
        label = c["trial_id"] + (" (baseline)" if c["baseline"] else
                                 " (winner)" if c["trial_id"] == table["winner"] else "")
        fid = "-" if c["fid_mean"] is None else f"{c['fid_mean']:.2f} ± {c['fid_std']:.2f}"
        kid = "-" if c["kid_mean"] is None else f"{c['kid_mean']:.4f}"
        lines.append(f"{c['rank']:<5} {label:<26} {fid:<33} {kid:<11} {c['fid_lite_mean']:.3f}")
    if any(c["rank"].endswith("=") for c in table["candidates"]):
        lines.append(f"(=: tied, means within {TIE_SIGMAS:g} standard errors of the difference)")
    if any(c["fid_mean"] is None for c in table["candidates"]):
        lines.append("(-: a run had no generator to score: it failed or diverged early)")
    return lines
