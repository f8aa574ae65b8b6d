"""The MLflow record of a search, written by a Tune callback on the driver: one parent run
per search, one child run per trial (tag ``mlflow.parentRunId``), so trials never reach
the store and there is one writer.

Tracking never costs a search. Each trial's record is kept in a ledger (what MLflow must
end up holding) and every MLflow call is guarded: when one fails, the record stays in the
ledger, which is saved with its sample grids under ``<search>/mlflow_pending/``, the tracker
stops calling MLflow for ``RETRY_AFTER_S`` (no blocked Tune loop) and then brings MLflow in
line with the ledger. ``finish`` tries once more; ``--resume`` retries what is left. Before
a record is written again after a failure, what MLflow already holds is checked, so no step
is logged twice. No callback raises: Tune always registers its checkpoints.

Child runs: every trial setting as a parameter; each evaluation's scores and losses as
metrics at its step (including the running best: ``fid_lite_best``, ``best_step``,
``collapse_at_best``, whose last values are what the search ranked by); the sample grid as
an image at each step, read alone from the checkpoint (never the whole checkpoint); the
status, role (search, baseline, confirm) and any message as tags; at the end the best
checkpoint's generator weights and grid under ``checkpoint/``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from PIL import Image
from ray.tune import Callback

from gan_search.confirm import CONFIRM_KEY, settings_of
from gan_search.files import write_text_atomic
from gan_search.trainable import GRID_FILE, checkpoint_uri, trial_status
from gan_search.tuning import same_config
from gan_search.tracking.checkpoints import best_checkpoint, log_generator, read_file
from gan_search.tracking.store import (MESSAGE_TAG, ROLE_TAG, SEARCH_TAG, STATUS_TAG,
                                           TRIAL_TAG, experiment_id, save_view, store_paths)

METRICS = ("fid_lite", "kid", "collapse", "coverage", "precision", "recall", "density", "ndb_k",
           "classes_found", "class_kl", "fid_lite_best", "best_step", "collapse_at_best",
           "kid_best", "score", "loss_d", "loss_g", "d_real", "d_fake")
RUN_STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "collapsed": "FINISHED",
              "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}
RETRY_AFTER_S = 30.0
RESTORED: dict[str, "MlflowTracker"] = {}  # search name -> tracker restored by Tune


@dataclass
class TrialRecord:
    """What MLflow must hold for one trial, and what of it is not written yet."""

    trial_id: str
    params: dict[str, str]
    tags: dict[str, str]
    run_id: str | None = None
    started: bool = False  # params and tags written
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # step -> unwritten
    grids: list[int] = field(default_factory=list)  # steps whose grid waits on disk
    status: str | None = None
    message: str | None = None
    checkpoint: str | None = None  # the best checkpoint (URI), for checkpoint/generator.pt
    closed: bool = False
    check_first: bool = False  # a write may have half-happened: look before writing again

    @property
    def pending(self) -> bool:
        return bool(not self.started or self.metrics or self.grids or
                    (self.status and not self.closed))


class MlflowTracker(Callback):
    """A Tune callback that records a search in MLflow (parent run + child per trial).

    Args:
        runs_dir: the runs directory (embedded store inside it).
        tracking_uri: an MLflow tracking server, or None for the embedded store.
        experiment: MLflow experiment name (the space's name).
        search_name: the search's name (the parent run's name and tag).
        params: search settings logged on the parent.
        space_file: the space YAML, logged as an artifact of the parent.
        pending_dir: where records MLflow did not take are kept (the search's folder).
        baseline: the baseline's point of the searched space (its trial is tagged so).
    """

    def __init__(self, runs_dir: str, tracking_uri: str | None, experiment: str,
                 search_name: str, params: dict[str, Any], space_file: str,
                 pending_dir: str | Path, baseline: dict[str, Any] | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.uri = tracking_uri or store_paths(runs_dir)[0]
        self.artifact_root = None if tracking_uri else store_paths(runs_dir)[1]
        self.experiment, self.search_name = experiment, search_name
        self.params, self.space_file, self.baseline = params, space_file, baseline
        self.pending_dir = Path(pending_dir) / "mlflow_pending"
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self.resumed = False  # a resumed search finds its runs in MLflow before writing
        self.records: dict[str, TrialRecord] = {}
        self.nodes: dict[str, str] = {}  # the Ray node each trial last reported from
        self.seconds = 0.0  # time spent logging, for the overhead figure
        self.quiet_until = 0.0  # after a failure, no MLflow call before this time
        self.last_error: str | None = None
        self.log = log
        self._client: MlflowClient | None = None
        self._checkpoints: dict[str, Any] = {}  # trial -> its best tune.Checkpoint (this run)
        self._writer_state()

    _TRANSIENT = ("_client", "log", "_checkpoints", "_inbox", "_wake", "_writer", "_closing")

    def _writer_state(self) -> None:
        self._inbox: deque[Callable[[], None]] = deque()
        self._wake, self._writer, self._closing = threading.Event(), None, False

    # Tune pickles callbacks with its experiment: no client, no log function
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict) -> None:
        # Tuner.restore unpickles this callback: register it, so the resumed search goes on
        # with the same instance; records MLflow did not take before are loaded again
        self.__dict__.update(state)
        self._client, self.log, self.resumed = None, lambda line: print(line, flush=True), True
        self._checkpoints = {}
        self._writer_state()
        self.load_pending()
        RESTORED[self.search_name] = self

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    # ------------------------------------------------------------ guarding

    def _guarded(self, what: str, action: Callable[[], Any], force: bool = False) -> bool:
        """Run an MLflow action; on any failure keep quiet for RETRY_AFTER_S and say so once."""
        if not force and time.monotonic() < self.quiet_until:
            return False
        started = time.perf_counter()
        try:
            action()
            return True
        except Exception as err:  # noqa: BLE001 - tracking must never end a search
            first = self.last_error is None
            self.last_error = f"{what}: {' '.join(str(err).split())[:200]}"
            self.quiet_until = time.monotonic() + RETRY_AFTER_S
            if first:
                self.log(f"warning: MLflow at {self.uri} did not take a record ({self.last_error}); "
                         f"the search goes on, records are kept and retried")
            return False
        finally:
            self.seconds += time.perf_counter() - started

    def _sync(self, force: bool = False) -> None:
        """Bring MLflow in line with the ledger, as far as it answers; save what is left."""
        ok = self._guarded("the search's parent run", self._ensure_parent, force)
        for record in self.records.values():
            if not ok:
                break
            if record.pending:
                ok = self._guarded(f"trial {record.trial_id}", lambda: self._push(record), force)
                record.check_first = record.check_first or not ok
        self.save_pending()

    # ------------------------------------------------------------ parent run

    def start(self) -> None:
        """Create the parent run, or find it again when the search is resumed (with any
        records an earlier run could not write)."""
        self.load_pending()
        self._sync(force=True)

    def _ensure_parent(self) -> None:
        if self.parent_id is not None:
            return
        client = self.client
        self.experiment_id = experiment_id(client, self.experiment, self.artifact_root)
        existing = client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{self.search_name}' and "
                                                f"tags.`{ROLE_TAG}` = 'parent'")
        if existing:
            self.parent_id, self.resumed = existing[0].info.run_id, True
            client.update_run(self.parent_id, status="RUNNING")
            return
        run = client.create_run(self.experiment_id, run_name=self.search_name,
                                tags={SEARCH_TAG: self.search_name, ROLE_TAG: "parent"})
        client.log_batch(run.info.run_id, params=_params(self.params))
        client.log_artifact(run.info.run_id, self.space_file, "space")
        save_view(client, self.experiment_id, self.search_name, self.params.get("searched", []))
        self.parent_id = run.info.run_id

    def finish(self, outcome: Any, leaderboard_text: str, summary_path: str) -> None:
        """Close what ended without an event, write the parent's summary (leaderboard,
        confirmation, importances, plots, best and baseline tags), one last try for what
        MLflow did not take, and one warning line naming what is still not recorded."""
        self.flush()
        for row in [*outcome.rows, *outcome.confirm_rows]:
            record = self.records.get(row.trial_id)
            if record is not None and not record.status:
                record.status, record.message = row.status, row.error
        self._sync(force=True)
        done = self._guarded("the search's summary", lambda: self._summarise(
            outcome, leaderboard_text, summary_path), force=True)
        left = [r for r in self.records.values() if r.pending]
        if left or not done:
            self.log(f"warning: MLflow at {self.uri} did not record {len(left)} trials "
                     f"({sum(len(r.metrics) for r in left)} evaluations, "
                     f"{sum(len(r.grids) for r in left)} grids){'' if done else ' and the summary'}"
                     f" ({self.last_error}); kept in {self.pending_dir}, retried by --resume")

    def _summarise(self, outcome: Any, leaderboard_text: str, summary_path: str) -> None:
        client, parent = self.client, self.parent_id
        runs = {t: r.run_id for t, r in self.records.items() if r.run_id}
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
        if len(outcome.objectives) > 1:
            front = [runs[r.trial_id] for r in outcome.rows if r.pareto and r.trial_id in runs]
            tags["gan_search.pareto_run_ids"] = ",".join(front)[:4000]
        client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()], metrics=[
            Metric(f"importance.{name}", share, int(time.time() * 1000), 0)
            for name, share in outcome.importances])
        self._summary_files(outcome, leaderboard_text, summary_path)
        client.log_metric(parent, "logging_seconds", self.seconds)
        client.log_metric(parent, "wall_seconds", outcome.seconds)
        client.set_terminated(parent, "KILLED" if outcome.interrupted else "FINISHED")

    def _summary_files(self, outcome: Any, leaderboard_text: str, summary_path: str) -> None:
        folder = self.pending_dir.parent / "summary"
        write_text_atomic(folder / "leaderboard.txt", leaderboard_text + "\n")
        files = [folder / "leaderboard.txt", Path(summary_path)]
        if len(outcome.objectives) > 1:
            front = [{"trial_id": r.trial_id, **{k: r.metrics.get(k) for k in outcome.objectives}}
                     for r in outcome.rows if r.pareto]
            write_text_atomic(folder / "pareto_front.json", json.dumps(front, indent=2))
            files.append(folder / "pareto_front.json")
        if outcome.importances:
            write_text_atomic(folder / "importances.json",
                              json.dumps(dict(outcome.importances), indent=2))
            files.append(folder / "importances.json")
        for path in files:
            self.client.log_artifact(self.parent_id, str(path))
        for plot in outcome.plots:
            self.client.log_artifact(self.parent_id, str(plot), "analysis")

    # ------------------------------------------------------------ children

    def _record(self, trial_id: str, config: dict[str, Any]) -> TrialRecord:
        """The ledger entry of a trial (made at its first event)."""
        if trial_id not in self.records:
            settings = {**self.params.get("base", {}), **settings_of(config)}
            tags = {TRIAL_TAG: trial_id, SEARCH_TAG: self.search_name,
                    STATUS_TAG: "running", ROLE_TAG: "search"}
            if CONFIRM_KEY in config:
                tags.update({ROLE_TAG: "confirm", "gan_search.confirm_of": config[CONFIRM_KEY]["of"]})
            elif self.baseline is not None and same_config(settings_of(config), self.baseline):
                tags[ROLE_TAG] = "baseline"
            self.records[trial_id] = TrialRecord(
                trial_id, {k: _text(v) for k, v in settings.items()}, tags,
                check_first=self.resumed)
        return self.records[trial_id]

    def _push(self, record: TrialRecord) -> None:
        """Write what the ledger holds for one trial and MLflow does not."""
        client = self.client
        if record.run_id is None:
            record.run_id = self._find_child(record) or client.create_run(
                self.experiment_id, run_name=f"trial_{record.trial_id}",
                tags={"mlflow.parentRunId": self.parent_id, **record.tags}).info.run_id
        if not record.started:
            client.log_batch(record.run_id, params=[Param(k, v[:6000]) for k, v in
                                                    record.params.items()],
                             tags=[RunTag(k, v) for k, v in record.tags.items()])
            record.started = True
        self._push_metrics(record)
        self._push_grids(record)
        if record.status and not record.closed:
            self._close(record)

    def _find_child(self, record: TrialRecord) -> str | None:
        if not (self.resumed or record.check_first):
            return None
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_id}' "
                                                f"and tags.`{TRIAL_TAG}` = '{record.trial_id}'")
        if found:
            self.client.update_run(found[0].info.run_id, status="RUNNING")
            record.started = record.check_first = True  # its params are there; look at steps
        return found[0].info.run_id if found else None

    def _push_metrics(self, record: TrialRecord) -> None:
        if not record.metrics:
            return
        if record.check_first:  # a write that failed may have reached MLflow all the same
            logged = {m.step for m in self.client.get_metric_history(record.run_id, "fid_lite")}
            for step in logged & set(record.metrics):
                del record.metrics[step]
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for step, values in sorted(record.metrics.items())
                 for k, v in values.items()]
        for start in range(0, len(batch), 900):  # MLflow takes 1,000 metrics a batch
            self.client.log_batch(record.run_id, metrics=batch[start:start + 900])
        record.metrics.clear()

    def _push_grids(self, record: TrialRecord) -> None:
        logged = _grid_steps(self.client, record.run_id) if record.check_first and record.grids \
            else set()
        for step in list(record.grids):
            path = self._grid_file(record.trial_id, step)
            if step not in logged and path.is_file():
                with Image.open(path) as image:
                    self.client.log_image(record.run_id, image.copy(), key="samples", step=step)
            record.grids.remove(step)
            path.unlink(missing_ok=True)

    def _close(self, record: TrialRecord) -> None:
        client = self.client
        tags = [RunTag(STATUS_TAG, record.status)]
        if record.message:
            tags.append(RunTag(MESSAGE_TAG, record.message[:5000]))
        client.log_batch(record.run_id, tags=tags)
        if record.checkpoint and "checkpoint/generator.pt" not in {
                f.path for f in client.list_artifacts(record.run_id, "checkpoint")}:
            log_generator(client, record.run_id,
                          self._checkpoints.get(record.trial_id, record.checkpoint))
        client.set_terminated(record.run_id, RUN_STATUS.get(record.status, "FINISHED"))
        record.closed = True

    # ------------------------------------------------------------ Tune events
    # Each event hands a change of the ledger to the writer thread and returns: Tune's loop
    # (and with it every trial waiting for its report to be taken) never waits for MLflow.

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        trial_id, config = trial.trial_id, dict(trial.config or {})
        self._post(lambda: self._record(trial_id, config))

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        trial_id, config = trial.trial_id, dict(trial.config or {})
        step, node = int(result.get("step", 0)), result.get("node_id")
        values = {k: float(result[k]) for k in METRICS if isinstance(result.get(k), (int, float))
                  and not isinstance(result.get(k), bool)}

        def change() -> None:
            record = self._record(trial_id, config)
            if values:
                record.metrics[step] = values
            if node and self.nodes.get(trial_id) != node:
                self.nodes[trial_id] = node
                record.tags["gan_search.node_id"] = node
                record.started = False  # write the tags again (params are the same)
        self._post(change)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):  # noqa: ANN001
        # the small grid file alone, from any storage (never the whole checkpoint), read now:
        # Tune deletes older checkpoints as newer ones come
        trial_id, config = trial.trial_id, dict(trial.config or {})
        step = int((trial.last_result or {}).get("step", 0))
        try:
            data = read_file(checkpoint, GRID_FILE)
        except OSError:
            return
        path = self._grid_file(trial_id, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._post(lambda: self._record(trial_id, config).grids.append(step))

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        result = trial.last_result or {}
        best = best_checkpoint(trial)
        if best is not None:
            self._checkpoints[trial.trial_id] = best  # the object here; its URI in the ledger
        self._end(trial, trial_status(result, None), result.get("message"),
                  checkpoint_uri(best) if best is not None else None)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        error = getattr(trial, "error_file", None)
        self._end(trial, "failed", error and f"see Tune's error file {error}", None)

    def _end(self, trial: Any, status: str, message: str | None, checkpoint: str | None) -> None:
        trial_id, config = trial.trial_id, dict(trial.config or {})

        def change() -> None:
            record = self._record(trial_id, config)
            record.status, record.message, record.checkpoint = status, message, checkpoint
        self._post(change)

    # ------------------------------------------------------------ the writer thread

    def _post(self, change: Callable[[], None]) -> None:
        self._inbox.append(change)  # a deque: appends and pops are thread-safe
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write, name="gan-search-mlflow",
                                            daemon=True)
            self._writer.start()
        self._wake.set()

    def _write(self) -> None:
        while True:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            changed = self._drain()
            due = time.monotonic() >= self.quiet_until and any(
                r.pending for r in self.records.values())
            if changed or due:
                self._sync()
            if self._closing and not self._inbox:
                return

    def _drain(self) -> bool:
        changed = False
        while self._inbox:
            self._inbox.popleft()()
            changed = True
        return changed

    def flush(self) -> None:
        """Stop the writer thread and apply every change it has not applied yet."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=600)
        self._drain()
        self._closing = False

    # ------------------------------------------------------------ what is kept

    def _grid_file(self, trial_id: str, step: int) -> Path:
        return self.pending_dir / f"grid_{trial_id}_{step:09d}.png"

    def save_pending(self) -> None:
        """The ledger's unwritten records on disk (grids are there already), or nothing."""
        path = self.pending_dir / "records.json"
        left = [dataclasses.asdict(r) for r in self.records.values() if r.pending]
        if left or self.parent_id is None:
            state = {"parent_id": self.parent_id, "records": left}
            write_text_atomic(path, json.dumps(state, default=str))
        else:
            path.unlink(missing_ok=True)
            if self.pending_dir.is_dir() and not any(self.pending_dir.iterdir()):
                self.pending_dir.rmdir()

    def load_pending(self) -> None:
        path = self.pending_dir / "records.json"
        if not path.is_file():
            return
        state = json.loads(path.read_text())
        self.parent_id = self.parent_id or state.get("parent_id")
        for raw in state["records"]:
            raw["metrics"] = {int(k): v for k, v in raw["metrics"].items()}
            self.records.setdefault(raw["trial_id"], TrialRecord(**{**raw, "check_first": True}))


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple)) else str(value)


def _params(values: dict[str, Any]) -> list[Param]:
    return [Param(k, _text(v)[:6000]) for k, v in values.items() if not isinstance(v, dict)]


def _grid_steps(client: MlflowClient, run_id: str) -> set[int]:
    names = [f.path for f in client.list_artifacts(run_id, "images") if f.path.endswith(".png")]
    return {int(n.split("+step+")[1].split("+")[0]) for n in names if "+step+" in n}
