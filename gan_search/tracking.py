"""Everything MLflow: the only module that imports mlflow.

One parent run per search, one child run per trial (tag ``mlflow.parentRunId``),
written by a Tune callback on the driver, so trials never reach the store and there
is one writer. Embedded default: a SQLite store and an artifact folder inside the runs
directory (MLflow 3 refuses plain-folder stores); ``--tracking-uri`` sends the same to
a tracking server.

Child runs: every trial setting as a parameter; scores and losses as metrics at each
evaluation step; the sample grid as an image at each step (the UI's image view has a
step slider); at the end the trial's status as the tag ``gan_search.status`` and its best
checkpoint (generator weights + config + grid) under the artifact folder ``checkpoint/``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from PIL import Image
from ray.tune import Callback

from gan_search.errors import ConfigError
from gan_search.report import best_row
from gan_search.trainable import trial_status

SEARCH_TAG, TRIAL_TAG, STATUS_TAG = "gan_search.search", "gan_search.trial_id", "gan_search.status"
MESSAGE_TAG = "gan_search.message"  # why a trial diverged or failed
METRICS = ("fid_lite", "kid", "collapse", "coverage", "precision", "recall", "density", "ndb_k",
           "classes_found", "class_kl", "fid_lite_best", "loss_d", "loss_g", "d_real", "d_fake")
RESTORED: dict[str, "MlflowTracker"] = {}  # search name -> tracker restored by Tune
RUN_STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "collapsed": "FINISHED",
              "diverged": "FAILED", "failed": "FAILED", "interrupted": "KILLED"}


def store_paths(runs_dir: str) -> tuple[str, str]:
    """(tracking URI, artifact root) of the embedded store inside a runs directory."""
    root = Path(runs_dir).expanduser().resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def tracking_uri_for(runs_dir: str, tracking_uri: str | None) -> str:
    return tracking_uri or store_paths(runs_dir)[0]


def check_store(runs_dir: str, tracking_uri: str | None, timeout: int = 5) -> None:
    """Fail before any trial starts, with one line, when a tracking server is unreachable."""
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                            "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(timeout))
    try:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    except Exception as err:  # any failure to reach the server is the same one-line error
        reason = " ".join(str(err).split())[:200]
        raise ConfigError(f"--tracking-uri {tracking_uri}: cannot reach the MLflow tracking "
                          f"server ({reason}); start it, fix the URI, or leave --tracking-uri "
                          "out to use the embedded store") from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def experiment_id(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = f"{artifact_root}/{name}" if artifact_root else None
    return client.create_experiment(name, artifact_location=location)


class MlflowTracker(Callback):
    """A Tune callback that records a search in MLflow (parent run + child per trial).

    Args:
        runs_dir: the runs directory (embedded store inside it).
        tracking_uri: an MLflow tracking server, or None for the embedded store.
        experiment: MLflow experiment name (the space's name).
        search_name: the search's name (the parent run's name and tag).
        params: search settings logged on the parent.
        space_file: the space YAML, logged as an artifact of the parent.
    """

    def __init__(self, runs_dir: str, tracking_uri: str | None, experiment: str,
                 search_name: str, params: dict[str, Any], space_file: str) -> None:
        self.uri = tracking_uri_for(runs_dir, tracking_uri)
        self.artifact_root = None if tracking_uri else store_paths(runs_dir)[1]
        self.experiment, self.search_name = experiment, search_name
        self.params, self.space_file = params, space_file
        self.parent_id: str | None = None
        self.experiment_id: str | None = None
        self.resumed = False  # only a resumed search looks for existing children
        self.children: dict[str, str] = {}
        self.nodes: dict[str, str] = {}  # the Ray node each trial last reported from
        self.seconds = 0.0  # time spent logging, for the overhead figure
        self._client: MlflowClient | None = None

    # the client holds database connections: never pickled with Tune's experiment state
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_client"}

    def __setstate__(self, state: dict) -> None:
        # Tuner.restore unpickles this callback: register it, so the resumed search
        # finishes the parent run with the same instance (and its logging time)
        self.__dict__.update(state)
        self._client = None
        self.resumed = True
        RESTORED[self.search_name] = self

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    # ------------------------------------------------------------ parent run

    def start(self) -> str:
        """Create the parent run, or reopen it when the search is resumed."""
        started = time.perf_counter()
        exp = experiment_id(self.client, self.experiment, self.artifact_root)
        existing = self.client.search_runs(
            [exp], filter_string=f"tags.`{SEARCH_TAG}` = '{self.search_name}' and "
                                 "attributes.run_name = '" + self.search_name + "'")
        self.experiment_id = exp
        if existing:
            self.parent_id = existing[0].info.run_id
            self.resumed = True
            self.client.update_run(self.parent_id, status="RUNNING")
        else:
            run = self.client.create_run(exp, run_name=self.search_name,
                                         tags={SEARCH_TAG: self.search_name})
            self.parent_id = run.info.run_id
            self.client.log_batch(self.parent_id, params=_params(self.params))
            self.client.log_artifact(self.parent_id, self.space_file, "space")
        self.seconds += time.perf_counter() - started
        return self.parent_id

    def finish(self, rows: list, leaderboard_text: str, summary_path: str,
               objectives: list[str], interrupted: bool, wall_seconds: float) -> None:
        """Leaderboard (and Pareto front) as artifacts, best child as tags, final status;
        children of trials that ended without events (e.g. failed) get their status too."""
        started = time.perf_counter()
        for row in rows:
            run_id = self._child(row.trial_id, None, create=False)
            if run_id is not None:  # a trial that ended without a complete event (interrupt)
                self._close_child(run_id, row.status, None)
        tags = {"gan_search.trials": str(len(rows))}
        best = best_row(rows)
        if best is not None and best.trial_id in self.children:
            tags.update({"gan_search.best_trial_id": best.trial_id,
                         "gan_search.best_run_id": self.children[best.trial_id],
                         "gan_search.best_fid_lite": f"{best.score:.6g}"})
        if len(objectives) > 1:
            front = [self.children[r.trial_id] for r in rows if r.pareto and r.trial_id in self.children]
            tags["gan_search.pareto_run_ids"] = ",".join(front)[:4000]
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "leaderboard.txt").write_text(leaderboard_text + "\n")
            self.client.log_artifact(self.parent_id, str(Path(folder) / "leaderboard.txt"))
            self.client.log_artifact(self.parent_id, summary_path)
            if len(objectives) > 1:
                front = [{"trial_id": r.trial_id, "run_id": self.children.get(r.trial_id),
                          **{k: r.metrics.get(k) for k in objectives}} for r in rows if r.pareto]
                (Path(folder) / "pareto_front.json").write_text(json.dumps(front, indent=2))
                self.client.log_artifact(self.parent_id, str(Path(folder) / "pareto_front.json"))
        for key, value in tags.items():
            self.client.set_tag(self.parent_id, key, value)
        self.seconds += time.perf_counter() - started
        self.client.log_metric(self.parent_id, "logging_seconds", self.seconds)
        self.client.log_metric(self.parent_id, "wall_seconds", wall_seconds)
        self.client.set_terminated(self.parent_id, "KILLED" if interrupted else "FINISHED")

    # ------------------------------------------------------------ children

    def _child(self, trial_id: str, trial: Any, create: bool = True) -> str | None:
        """The child run of a trial: known, found again (resume), or created."""
        if trial_id in self.children:
            return self.children[trial_id]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_id}' and "
                          f"tags.`{TRIAL_TAG}` = '{trial_id}'") if self.resumed or not create else []
        if found:  # a resumed trial: its child run is open again
            self.children[trial_id] = found[0].info.run_id
            if create:
                self.client.update_run(found[0].info.run_id, status="RUNNING")
                self.client.set_tag(found[0].info.run_id, STATUS_TAG, "running")
        elif create and trial is not None:
            run = self.client.create_run(
                self.experiment_id, run_name=f"trial_{trial_id}",
                tags={"mlflow.parentRunId": self.parent_id, TRIAL_TAG: trial_id,
                      SEARCH_TAG: self.search_name, STATUS_TAG: "running"})
            self.children[trial_id] = run.info.run_id
            config = {**self.params.get("base", {}), **(trial.config or {})}
            self.client.log_batch(run.info.run_id, params=_params(config))
        return self.children.get(trial_id)

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        started = time.perf_counter()
        self._child(trial.trial_id, trial)
        self.seconds += time.perf_counter() - started

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        started = time.perf_counter()
        run_id = self._child(trial.trial_id, trial)
        step = int(result.get("step", 0))
        now = int(time.time() * 1000)
        metrics = [mlflow.entities.Metric(k, float(result[k]), now, step) for k in METRICS
                   if isinstance(result.get(k), (int, float)) and not isinstance(result.get(k), bool)]
        node = result.get("node_id")
        tags = [mlflow.entities.RunTag("gan_search.node_id", node)] if node and \
            self.nodes.get(trial.trial_id) != node else []
        self.nodes[trial.trial_id] = node
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        self.seconds += time.perf_counter() - started

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):  # noqa: ANN001
        started = time.perf_counter()
        run_id = self._child(trial.trial_id, trial)
        step = int((trial.last_result or {}).get("step", 0))
        with checkpoint.as_directory() as folder:
            grid = Path(folder) / "samples.png"
            if grid.is_file():
                with Image.open(grid) as image:
                    self.client.log_image(run_id, image.copy(), key="samples", step=step)
        self.seconds += time.perf_counter() - started

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        started = time.perf_counter()
        run_id = self._child(trial.trial_id, trial)
        result = trial.last_result or {}
        self._close_child(run_id, trial_status(result, None), best_checkpoint(trial),
                          result.get("message"))
        self.seconds += time.perf_counter() - started

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        started = time.perf_counter()
        run_id = self._child(trial.trial_id, trial)
        error = getattr(trial, "error_file", None) and "see Tune's error file " + trial.error_file
        self._close_child(run_id, "failed", None, error)
        self.seconds += time.perf_counter() - started

    def _close_child(self, run_id: str, status: str, checkpoint: Any,
                     message: str | None = None) -> None:
        run = self.client.get_run(run_id)
        if run.data.tags.get(STATUS_TAG) == status and run.info.status != "RUNNING":
            return  # already closed with this status (resume, or finish() after complete)
        self.client.set_tag(run_id, STATUS_TAG, status)
        if message:
            self.client.set_tag(run_id, MESSAGE_TAG, message[:5000])
        if checkpoint and "checkpoint/generator.pt" not in _artifacts(self.client, run_id):
            log_generator(self.client, run_id, checkpoint)
        self.client.set_terminated(run_id, RUN_STATUS.get(status, "FINISHED"))


def _params(values: dict[str, Any]) -> list:
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            continue
        text = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
        out.append(mlflow.entities.Param(key, text[:6000]))
    return out


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id, "checkpoint")}


def best_checkpoint(trial: Any) -> Any:
    """The trial's kept checkpoint with the lowest FID-lite (a ``tune.Checkpoint``), or None."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    results = list(getattr(manager, "best_checkpoint_results", None) or [])
    scored = [r for r in results if isinstance(r.metrics.get("fid_lite"), (int, float))]
    return min(scored, key=lambda r: r.metrics["fid_lite"]).checkpoint if scored else None


def log_generator(client: MlflowClient, run_id: str, checkpoint: Any) -> None:
    """Log a trial's best checkpoint as artifacts: the generator weights with its config
    and step (``checkpoint/generator.pt``, loadable with weights_only=True) and its grid.
    ``checkpoint`` is a ``tune.Checkpoint`` (local or on shared storage)."""
    import torch

    with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory() as tmp:
        folder = Path(folder)
        state = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=True)
        path = Path(tmp) / "generator.pt"
        torch.save({"gen": state["gen"], "config": state["config"], "step": state["step"]}, path)
        client.log_artifact(run_id, str(path), "checkpoint")
        if (folder / "samples.png").is_file():
            client.log_artifact(run_id, str(folder / "samples.png"), "checkpoint")


def require_store(runs_dir: str) -> str:
    """The embedded store's URI; one clear error when the runs directory has none."""
    uri = store_paths(runs_dir)[0]
    database = uri.removeprefix("sqlite:///")
    if not Path(database).is_file():
        raise ConfigError(f"no MLflow store in {runs_dir} (expected {database}); run "
                          "`gan-search run` first or pass --runs-dir")
    return uri


def find_run(runs_dir: str, tracking_uri: str | None, run: str) -> tuple[MlflowClient, str]:
    """A run id, or "best": the best child of the most recent search in the store."""
    uri = tracking_uri or require_store(runs_dir)
    client = MlflowClient(uri)
    if run != "best":
        try:
            client.get_run(run)
        except mlflow.exceptions.MlflowException:
            raise ConfigError(f"--run {run}: no such run in {uri}") from None
        return client, run
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, filter_string=f"tags.`{SEARCH_TAG}` != ''",
                                 order_by=["attributes.start_time DESC"], max_results=200)
    for parent in parents:
        best = parent.data.tags.get("gan_search.best_run_id")
        if best:
            return client, best
    raise ConfigError(f"--run best: no finished search with a best trial in {uri}")


def download_generator(client: MlflowClient, run_id: str, folder: str) -> Path:
    try:
        path = client.download_artifacts(run_id, "checkpoint/generator.pt", folder)
    except (mlflow.exceptions.MlflowException, OSError):
        raise ConfigError(f"run {run_id} has no checkpoint/generator.pt artifact (only ended "
                          "trials with an evaluation have one)") from None
    return Path(path)


def ui_command(runs_dir: str, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line for the embedded store of a runs directory."""
    uri = require_store(runs_dir)
    artifacts = store_paths(runs_dir)[1]
    import sys

    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--default-artifact-root", artifacts, "--host", host, "--port", str(port)]


__all__ = ["MlflowTracker", "RunStatus", "check_store", "download_generator", "find_run",
           "store_paths", "ui_command"]
