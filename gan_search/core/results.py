"""The result model of a search: each trial's outcome (``TrialRow``), the whole search's
(``SearchOutcome``), the one rule for its best trial, its Pareto front, and what a trial's
reported metrics say its status is. Also where a trial's checkpoint keeps its files.

Plain data (no Ray, no Optuna, no MLflow): the search builds it, the report, the summary
files and the tracker read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from gan_search.core.vocabulary import TRAINED, Status

# a trial's checkpoint: the trainer's state, its sample grid, its best-so-far record, and G
# alone (weights, config, step), which is what MLflow keeps
TRAINER_FILE, GRID_FILE, PROGRESS_FILE = "trainer.pt", "samples.png", "progress.json"
GENERATOR_FILE = "generator.pt"
TRAIN_CHECKPOINT = "checkpoint.pt"  # `gan-search train`'s whole trainer state, in its --out


def checkpoint_uri(checkpoint: Any) -> str:
    """A Tune checkpoint's location: a local path, or a URI its filesystem can be found from
    again (Tune's checkpoint paths on s3://... storage carry no scheme)."""
    kind = checkpoint.filesystem.type_name
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path.lstrip('/')}"


def read_checkpoint_file(checkpoint: Any, name: str) -> bytes:
    """One file of a checkpoint (a ``tune.Checkpoint``, its URI or a local folder), read
    alone through the checkpoint's own filesystem (local, or s3://...); FileNotFoundError
    when it has no such file."""
    import pyarrow.fs

    if isinstance(checkpoint, str):
        fs, base = pyarrow.fs.FileSystem.from_uri(checkpoint if "://" in checkpoint
                                                  else Path(checkpoint).resolve().as_uri())
    else:
        fs, base = checkpoint.filesystem, checkpoint.path
    with fs.open_input_file(f"{base.rstrip('/')}/{name}") as f:
        return f.read()


def of_current_weights(scored: list, final: dict[str, Any]) -> list:
    """Of a trial's kept (checkpoint, metrics) pairs, those of the weights it ended with: a
    PBT member's checkpoints from before its last copy are of weights it no longer has
    (each result carries the id of the member's last copy, ``copy_id``)."""
    current = [pair for pair in scored if pair[1].get("copy_id", "") == final.get("copy_id", "")]
    return current or scored


def best_checkpoint_of(kept: list, final: dict[str, Any]) -> Any:
    """A trial's best checkpoint, the one rule for it: of its kept (checkpoint, metrics)
    pairs with a FID-lite, those of the weights it ended with (``final``: its last result),
    the lowest FID-lite; None when none was scored."""
    scored = [(c, m) for c, m in kept if isinstance(m.get("fid_lite"), (int, float))
              and math.isfinite(m["fid_lite"])]
    scored = of_current_weights(scored, final)
    return min(scored, key=lambda pair: pair[1]["fid_lite"])[0] if scored else None


def trial_status(metrics: dict[str, Any], error: Any) -> Status:
    """finished / stopped (early, by ASHA) / collapsed / diverged / failed, from a trial's
    last reported metrics (and Tune's error, if it had one)."""
    if error is not None:
        return Status.FAILED
    status = metrics.get("status")
    if status in (Status.DIVERGED, Status.COLLAPSED, Status.FINISHED, Status.FAILED):
        return Status(status)
    return Status.STOPPED if metrics else Status.FAILED


@dataclass
class TrialRow:
    """One trial's outcome, for the leaderboard and MLflow."""

    trial_id: str
    status: Status
    params: dict[str, Any]
    metrics: dict[str, Any]
    path: str | None = None
    checkpoint: str | None = None
    error: str | None = None
    pareto: bool = False
    baseline: bool = False  # the space's hand-picked configuration, evaluated first

    @property
    def score(self) -> float:
        value = self.metrics.get("score")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


@dataclass
class SearchOutcome:
    name: str
    path: str
    rows: list[TrialRow]
    interrupted: bool
    seconds: float
    score_keys: list[str] = field(default_factory=list)  # score_keys(the space's objectives)
    study: Any = None  # the search's stored Optuna study (study.py), read back after it
    logging_seconds: float = 0.0  # time spent writing MLflow records
    fit_seconds: float = 0.0  # the search's Tune fit alone (no start-up, confirmation, plots)
    parent_run_id: str | None = None
    confirmation: list | None = None  # confirm.Candidate, best mean first (None: not run)
    confirm_rows: list[TrialRow] = field(default_factory=list)  # the confirmation's trials
    importances: list[tuple[str, float]] = field(default_factory=list)
    plots: list = field(default_factory=list)  # PNG paths of Optuna's plots
    spent: int = 0  # iterations the trials trained, search and confirmation (spend.py)
    delivered: str | None = None  # the folder of the delivered generator (deliver.py)

    @property
    def best(self) -> TrialRow | None:
        """What the summary, `sample --run best` and MLflow's best_run_id point to: with a
        confirmation, the confirmed winner's best fresh-seed run (full budget); else the
        search's best trial (best_row)."""
        if self.confirmation:
            runs = {r.trial_id: r for r in self.confirm_rows}
            winner = [runs[run["trial_id"]] for run in self.confirmation[0].runs
                      if run["trial_id"] in runs]
            found = best_row(winner)
            if found is not None:
                return found
        return best_row(self.rows)

    @property
    def baseline(self) -> TrialRow | None:
        return next((r for r in self.rows if r.baseline), None)

    @property
    def winner_id(self) -> str | None:
        """The winning configuration's search trial: the confirmed winner, else ``best``'s."""
        if self.confirmation:
            return self.confirmation[0].trial_id
        return self.best.trial_id if self.best else None

    @property
    def baseline_won(self) -> bool:
        """The winning configuration is the baseline's."""
        if self.confirmation:
            return bool(self.confirmation[0].baseline)
        return bool(self.best and self.best.baseline)


def best_row(rows: list[TrialRow]) -> TrialRow | None:
    """The search's best trial, one rule for the summary, `sample --run best` and MLflow:
    the lowest score among trials that trained to a normal end (finished, or stopped early
    by ASHA); only when there is none, among collapsed trials; never a diverged, failed or
    interrupted one."""
    for statuses in (TRAINED, (Status.COLLAPSED,)):
        scored = [r for r in rows if r.status in statuses and math.isfinite(r.score)]
        if scored:
            return min(scored, key=lambda r: r.score)
    return None



def pareto_front(rows: list[TrialRow], keys: list[str]) -> None:
    """Mark rows not dominated on every key (all minimised)."""
    scored = [r for r in rows if all(isinstance(r.metrics.get(k), (int, float)) for k in keys)]
    for row in scored:
        mine = [row.metrics[k] for k in keys]
        row.pareto = not any(
            all(o <= m for o, m in zip([other.metrics[k] for k in keys], mine)) and
            any(o < m for o, m in zip([other.metrics[k] for k in keys], mine))
            for other in scored if other is not row)


def score_keys(objectives: Sequence[str]) -> list[str]:
    """The result keys a search minimises for its objectives (the space's names):
    ``score`` (the first objective's best so far, which ASHA also ranks by), then
    ``score_<name>`` for a second objective."""
    return ["score", *[f"score_{name}" for name in objectives[1:]]]
