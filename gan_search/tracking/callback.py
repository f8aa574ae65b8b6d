"""The MLflow record of a search, as a thin Tune callback on the driver: one parent run per
search, one child run per trial (tag ``mlflow.parentRunId``), so trials never reach the
store and there is one writer.

Split by job, as Ray's own ``MLflowLoggerCallback`` is a thin callback over a helper:
- this callback turns Tune's events into changes of the ledger (``ledger.py``: what MLflow
  must end up holding, kept on disk while it is not written);
- the writer thread (``writer.py``) applies them off Tune's loop;
- the recorder (``recorder.py``) does the MLflow I/O, guarded: tracking never costs a
  search; what MLflow did not take is retried, by ``finish`` and by ``--resume``.
No callback raises: Tune always registers its checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from ray.tune import Callback

from gan_search.core.config import TRAINING_SETTINGS
from gan_search.core.restorable import Restorable
from gan_search.core.results import (GENERATOR_FILE, GRID_FILE, SearchOutcome, checkpoint_uri,
                                     read_checkpoint_file, trial_status)
from gan_search.core.vocabulary import Status
from gan_search.tracking.checkpoints import best_checkpoint
from gan_search.tracking.ledger import Ledger
from gan_search.tracking.recorder import Recorder
from gan_search.tracking.tags import LINEAGE_TAG, NODE_TAG
from gan_search.tracking.writer import Writer

METRICS = ("fid_lite", "fid_lite_std", "fid_lite_std_at_best", "kid", "collapse", "coverage",
           "precision", "recall", "density", "ndb_k", "classes_found", "class_kl", "fid_lite_best", "best_step", "collapse_at_best",
           "kid_best", "score", "loss_d", "loss_g", "d_real", "d_fake", "skipped_d", "skipped_g",
           # the settings in effect (a PBT member's change), and how often it copied another
           *(f"setting_{name}" for name in TRAINING_SETTINGS), "exploits")
LINEAGE_CHARS = 5000  # a lineage tag keeps its last copies within this many characters


class MlflowTracker(Callback, Restorable):
    """A Tune callback that records a search in MLflow (parent run + child per trial).

    Args:
        runs_dir: the runs directory (embedded store inside it).
        tracking_uri: an MLflow tracking server, or None for the embedded store.
        experiment: MLflow experiment name (the space's name).
        search_name: the search's name (the parent run's name and tag).
        params: search settings logged on the parent.
        base: the settings every trial shares (logged on every child with its own).
        space_file: the space YAML, logged as an artifact of the parent.
        folder: the search's folder (records MLflow did not take are kept there).
        load_generator: a generator file -> (the network, its z_dim): the delivered
            generator is registered as an MLflow model (the app passes the engine's loader).

    Each trial's run is named and tagged by its role (settings.TrialSettings); a PBT
    member's copies are in a lineage tag.
    """

    # the driver's own parts: a resumed search hands the fresh tracker's to the restored one
    LIVE = ("recorder", "writer", "log", "load_generator")

    def __init__(self, runs_dir: str, tracking_uri: str | None, experiment: str,
                 search_name: str, params: dict[str, Any], base: Mapping[str, Any],
                 space_file: str, folder: str | Path,
                 log: Callable[[str], None] = print,
                 load_generator: Callable[[Path], tuple[Any, int]] | None = None) -> None:
        self.search_name = search_name
        self.load_generator = load_generator
        self.ledger = Ledger(folder, search_name, base)
        self.recorder = Recorder(runs_dir, tracking_uri, experiment, params, space_file, log)
        self.writer = Writer(self._sync, self._due)
        self.log = log

    @property
    def restore_key(self) -> str:
        return f"mlflow:{self.search_name}"

    def resumed(self) -> None:
        """Restored by --resume: the fresh tracker's writer now serves this ledger."""
        self.writer.sync, self.writer.due = self._sync, self._due
        self.ledger.resumed = True
        self.ledger.load()

    @property
    def parent_id(self) -> str | None:
        return self.ledger.parent_id

    @property
    def seconds(self) -> float:
        return self.recorder.seconds

    def _sync(self, force: bool = False) -> None:
        self.recorder.sync(self.ledger, force)

    def _due(self) -> bool:
        """Something is still unwritten and the recorder may try MLflow again."""
        return self.recorder.due() and bool(self.ledger.left())

    def start(self) -> None:
        """Create the parent run, or find it again when the search is resumed (with any
        records an earlier run could not write)."""
        self.ledger.load()
        self._sync(force=True)

    def finish(self, outcome: SearchOutcome, files: list[Path]) -> None:
        """Close what ended without an event, write the parent's summary (tags, importances,
        the search's summary ``files`` and plots), one last try for what MLflow did not
        take, and one warning line naming what is still not recorded."""
        self.writer.flush()
        for row in [*outcome.rows, *outcome.confirm_rows]:
            record = self.ledger.records.get(row.trial_id)
            if record is not None and not record.status:
                record.status, record.message = row.status, row.error
        self._sync(force=True)
        runs = {t: r.run_id for t, r in self.ledger.records.items() if r.run_id}
        tags, metrics = parent_summary(outcome, runs)
        done = self.recorder.guarded("the search's summary", lambda: self.recorder.summarise(
            self.ledger, tags, metrics, files, outcome.plots, outcome.interrupted), force=True)
        if done and outcome.delivered and self.load_generator is not None:
            self._register(outcome)
        left = self.ledger.left()
        if left or not done:
            self.log(f"warning: MLflow at {self.recorder.uri} did not record {len(left)} trials "
                     f"({sum(len(r.metrics) for r in left)} evaluations, "
                     f"{sum(len(r.grids) for r in left)} grids){'' if done else ' and the summary'}"
                     f" ({self.recorder.last_error}); kept in {self.ledger.folder}, retried by "
                     "--resume")

    def _register(self, outcome: SearchOutcome) -> None:
        delivered = Path(outcome.delivered)
        about = json.loads((delivered / "delivered.json").read_text())
        generator, z_dim = self.load_generator(delivered / GENERATOR_FILE)
        tags = {"run": str(about.get("run")), "baseline": str(about.get("baseline")),
                "score": str(about.get("score"))}
        uri: list[str] = []
        if self.recorder.guarded("the delivered generator as a registered model", lambda: uri.append(
                self.recorder.register(self.ledger, generator, z_dim, tags)), force=True):
            self.log(f"MLflow: the delivered generator is the registered model {uri[0]} "
                     "(mlflow.pytorch.load_model)")

    # ------------------------------------------------------------ Tune events
    # Each event hands a change of the ledger to the writer thread and returns.

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        trial_id, config = trial.trial_id, dict(trial.config or {})
        self.writer.post(lambda: self.ledger.record(trial_id, config))

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        trial_id, config = trial.trial_id, dict(trial.config or {})
        step, node = int(result.get("step", 0)), result.get("node_id")
        values = {k: float(result[k]) for k in METRICS if isinstance(result.get(k), (int, float))
                  and not isinstance(result.get(k), bool)}
        lineage = lineage_tag(result.get("lineage"))
        copied = str(result.get("copy_id") or "")

        def change() -> None:
            record = self.ledger.record(trial_id, config)
            if copied != getattr(record, "copied", ""):  # a PBT member took another's
                record.copied = copied  # checkpoint: its steps go on from that one's
                record.last_step = record.last_grid = -1
            if values and step > record.last_step:  # not a step a retried trial repeats
                record.metrics[step], record.last_step = values, step
            tags = {NODE_TAG: node, LINEAGE_TAG: lineage}
            for key, value in tags.items():
                if value and record.tags.get(key) != value:
                    record.tags[key] = value
                    record.retag = True
            if node:
                self.ledger.nodes[trial_id] = node
        self.writer.post(change)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):  # noqa: ANN001
        # the small grid file alone, from any storage (never the whole checkpoint), read now:
        # Tune deletes older checkpoints as newer ones come
        trial_id, config = trial.trial_id, dict(trial.config or {})
        step = int((trial.last_result or {}).get("step", 0))
        try:
            data = read_checkpoint_file(checkpoint, GRID_FILE)
        except OSError:
            return
        path = self.ledger.grid_file(trial_id, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

        def change() -> None:
            record = self.ledger.record(trial_id, config)
            if step > record.last_grid:
                record.grids.append(step)
                record.last_grid = step
            elif step not in record.grids:  # a retried trial's repeat of a grid MLflow has
                path.unlink(missing_ok=True)
        self.writer.post(change)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        result = trial.last_result or {}
        best = best_checkpoint(trial)
        if best is not None:
            self.recorder.checkpoints[trial.trial_id] = best  # the object; its URI in the ledger
        self._end(trial, trial_status(result, None), result.get("message"),
                  checkpoint_uri(best) if best is not None else None)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        error = getattr(trial, "error_file", None)
        self._end(trial, Status.FAILED, error and f"see Tune's error file {error}", None)

    def _end(self, trial: Any, status: Status, message: str | None,
             checkpoint: str | None) -> None:
        trial_id, config = trial.trial_id, dict(trial.config or {})

        def change() -> None:
            record = self.ledger.record(trial_id, config)
            record.status, record.message, record.checkpoint = status, message, checkpoint
        self.writer.post(change)


def lineage_tag(lineage: str | None) -> str | None:
    """A PBT member's copies as its tag's value (JSON): the last ones that fit MLflow's
    limit; None when it never copied another."""
    try:
        copies = json.loads(lineage or "[]")
    except ValueError:
        return None
    while copies and len(json.dumps(copies)) > LINEAGE_CHARS:
        copies = copies[1:]
    return json.dumps(copies) if copies else None


def parent_summary(outcome: SearchOutcome,
                   runs: dict[str, str]) -> tuple[dict[str, str], dict[str, float]]:
    """The parent's tags (the best, the baseline, the confirmed winner, the Pareto front)
    and metrics (importances, wall time) at the end of a search."""
    tags = {"gan_search.trials": str(len(outcome.rows))}
    best, base = outcome.best, outcome.baseline
    if best is not None and best.trial_id in runs:
        tags.update({"gan_search.best_trial_id": best.trial_id,
                     "gan_search.best_run_id": runs[best.trial_id],
                     "gan_search.best_fid_lite": f"{best.metrics.get('score_fid_lite', 0):.6g}"})
    if base is not None and base.trial_id in runs:
        tags.update({"gan_search.baseline_run_id": runs[base.trial_id],
                     "gan_search.baseline_fid_lite": f"{base.metrics.get('score_fid_lite', 0):.6g}"})
    if outcome.confirmation:
        win = outcome.confirmation[0]
        tags.update({"gan_search.confirmed_trial_id": win.trial_id,
                     "gan_search.confirmed_mean": f"{win.mean:.6g}",
                     "gan_search.confirmed_std": f"{win.spread:.6g}"})
    if len(outcome.score_keys) > 1:
        front = [runs[r.trial_id] for r in outcome.rows if r.pareto and r.trial_id in runs]
        tags["gan_search.pareto_run_ids"] = ",".join(front)[:4000]
    metrics = {f"importance.{name}": share for name, share in outcome.importances}
    metrics["wall_seconds"] = outcome.seconds
    return tags, metrics
