"""The MLflow I/O of a search: the parent run, a child run per trial, the summary.

Every call is guarded: when one fails, the record stays in the ledger, the recorder keeps
quiet for ``RETRY_AFTER_S`` (no blocked Tune loop) and then brings MLflow in line with the
ledger again. Before a record is written again after a failure, what MLflow already holds
is checked, so no step is logged twice. Nothing here raises.

Child runs: every trial setting as a parameter; each evaluation's scores and losses as
metrics at its step (including the running best: ``fid_lite_best``, ``best_step``,
``collapse_at_best``); the sample grid as an image at each step; the status, role and
any message as tags; at the end the best checkpoint's generator weights and grid under
``checkpoint/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from PIL import Image

from gan_search.core.vocabulary import Role, Status
from gan_search.tracking.checkpoints import log_generator
from gan_search.tracking.ledger import Ledger, TrialRecord, text
from gan_search.tracking.tags import (MESSAGE_TAG, MODEL_TAG, ROLE_TAG, SEARCH_TAG, STATUS_TAG,
                                      TRIAL_TAG)
from gan_search.tracking.store import experiment_id, logged_grid_steps, save_view, store_paths

RETRY_AFTER_S = 30.0
MODEL_PATH = "generator_model"  # the delivered generator as an MLflow model, on the parent
GRID_KEY = "samples"  # the image key of the sample grids (the UI's image panel)
RUN_STATUS = {Status.FINISHED: "FINISHED", Status.STOPPED: "FINISHED",
              Status.COLLAPSED: "FINISHED", Status.DIVERGED: "FAILED", Status.FAILED: "FAILED",
              Status.INTERRUPTED: "KILLED"}


class Recorder:
    """Writes a search's ledger to MLflow (an embedded store or a tracking server).

    Args:
        runs_dir: the runs directory (the embedded store is inside it).
        tracking_uri: an MLflow tracking server, or None for the embedded store.
        experiment: the MLflow experiment (the space's name).
        params: the search's settings, logged on the parent run.
        space_file: the space YAML, logged as an artifact of the parent.
    """

    def __init__(self, runs_dir: str, tracking_uri: str | None, experiment: str,
                 params: dict[str, Any], space_file: str,
                 log: Callable[[str], None] = print) -> None:
        self.uri = tracking_uri or store_paths(runs_dir)[0]
        self.artifact_root = None if tracking_uri else store_paths(runs_dir)[1]
        self.experiment, self.params, self.space_file = experiment, params, space_file
        self.experiment_id: str | None = None
        self.seconds = 0.0  # time spent logging, for the overhead figure
        self.quiet_until = 0.0  # after a failure, no MLflow call before this time
        self.last_error: str | None = None
        self.log = log
        self.checkpoints: dict[str, Any] = {}  # trial -> its best tune.Checkpoint (this run)
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    def due(self) -> bool:
        return time.monotonic() >= self.quiet_until

    def guarded(self, what: str, action: Callable[[], Any], force: bool = False) -> bool:
        """Run an MLflow action; on any failure keep quiet for RETRY_AFTER_S and say so once."""
        if not force and not self.due():
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

    def sync(self, ledger: Ledger, force: bool = False) -> None:
        """Bring MLflow in line with the ledger, as far as it answers; save what is left."""
        ok = self.guarded("the search's parent run", lambda: self.ensure_parent(ledger), force)
        for record in list(ledger.records.values()):
            if not ok:
                break
            if record.pending:
                ok = self.guarded(f"trial {record.trial_id}",
                                  lambda: self.push(ledger, record), force)
                record.check_first = record.check_first or not ok
        ledger.save()

    # ------------------------------------------------------------ the parent run

    def ensure_parent(self, ledger: Ledger) -> None:
        """Create the parent run, or find it again (a resumed search)."""
        client = self.client
        self.experiment_id = self.experiment_id or experiment_id(
            client, self.experiment, self.artifact_root)
        if ledger.parent_id is not None:
            return
        existing = client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{SEARCH_TAG}` = '{ledger.search}' and "
                                                f"tags.`{ROLE_TAG}` = '{Role.PARENT}'")
        if existing:
            ledger.parent_id, ledger.resumed = existing[0].info.run_id, True
            client.update_run(ledger.parent_id, status="RUNNING")
            return
        run = client.create_run(self.experiment_id, run_name=ledger.search,
                                tags={SEARCH_TAG: ledger.search, ROLE_TAG: Role.PARENT})
        client.log_batch(run.info.run_id, params=[
            Param(k, text(v)[:6000]) for k, v in self.params.items() if not isinstance(v, dict)])
        client.log_artifact(run.info.run_id, self.space_file, "space")
        save_view(client, self.experiment_id, ledger.search, self.params.get("searched", []))
        ledger.parent_id = run.info.run_id

    def summarise(self, ledger: Ledger, tags: dict[str, str], metrics: dict[str, float],
                  files: list[Path], plots: list[Path], interrupted: bool) -> None:
        """The search's end on its parent run: tags, metrics, files, plots, its status."""
        client, parent = self.client, ledger.parent_id
        now = int(time.time() * 1000)
        client.log_batch(parent, tags=[RunTag(k, v) for k, v in tags.items()],
                         metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        for path in files:
            client.log_artifact(parent, str(path))
        for plot in plots:
            client.log_artifact(parent, str(plot), "analysis")
        client.log_metric(parent, "logging_seconds", self.seconds)
        client.set_terminated(parent, "KILLED" if interrupted else "FINISHED")

    def register(self, ledger: Ledger, generator: Any, z_dim: int, about: dict[str, str]
                 ) -> str:
        """The delivered generator as an MLflow model on the parent run (``mlflow.pytorch``
        in its pt2 format: ``torch.export``'s program, loaded without gan-search), registered
        under the search's name; its ``models:/`` URI, also a tag of the parent."""
        import tempfile

        import mlflow.pytorch
        import numpy as np
        import torch

        client, parent = self.client, ledger.parent_id
        with tempfile.TemporaryDirectory() as folder:
            mlflow.pytorch.save_model(
                generator, f"{folder}/model", serialization_format="pt2",
                input_example=np.zeros((2, z_dim, 1, 1), dtype="float32"),
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
            client.log_artifacts(parent, f"{folder}/model", MODEL_PATH)
        if not client.search_registered_models(f"name = '{ledger.search}'"):
            client.create_registered_model(ledger.search, description="the delivered "
                                           "generators of gan-search's search of this name")
        version = client.create_model_version(ledger.search, f"runs:/{parent}/{MODEL_PATH}",
                                              run_id=parent, tags=about)
        uri = f"models:/{ledger.search}/{version.version}"
        client.set_tag(parent, MODEL_TAG, uri)
        return uri

    # ------------------------------------------------------------ the children

    def push(self, ledger: Ledger, record: TrialRecord) -> None:
        """Write what the ledger holds for one trial and MLflow does not."""
        client = self.client
        if record.run_id is None:
            record.run_id = self._find_child(ledger, record) or client.create_run(
                self.experiment_id, run_name=record.name or f"trial_{record.trial_id}",
                tags={"mlflow.parentRunId": ledger.parent_id, **record.tags}).info.run_id
        if not record.started or record.retag:  # the params once, the tags as they change
            params = [] if record.started else [Param(k, v[:6000]) for k, v in
                                                record.params.items()]
            client.log_batch(record.run_id, params=params,
                             tags=[RunTag(k, v) for k, v in record.tags.items()])
            record.started, record.retag = True, False
        self._push_metrics(record)
        self._push_grids(ledger, record)
        if record.status and not record.closed:
            self._close(record)

    def _find_child(self, ledger: Ledger, record: TrialRecord) -> str | None:
        if not (ledger.resumed or record.check_first):
            return None
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{ledger.parent_id}' "
                          f"and tags.`{TRIAL_TAG}` = '{record.trial_id}'")
        if found:
            self.client.update_run(found[0].info.run_id, status="RUNNING")
            # its params are there (this process's may be a PBT member's later settings)
            record.started = record.check_first = True  # look at its steps first
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

    def _push_grids(self, ledger: Ledger, record: TrialRecord) -> None:
        logged = set(logged_grid_steps(self.client, record.run_id, GRID_KEY)) \
            if record.check_first and record.grids else set()
        for step in list(record.grids):
            path = ledger.grid_file(record.trial_id, step)
            if step not in logged and path.is_file():
                with Image.open(path) as image:
                    self.client.log_image(record.run_id, image.copy(), key=GRID_KEY, step=step)
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
                          self.checkpoints.get(record.trial_id, record.checkpoint))
        client.set_terminated(record.run_id, RUN_STATUS.get(record.status, "FINISHED"))
        record.closed = True
