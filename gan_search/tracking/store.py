"""Where a search's MLflow records live, and reading them back: the embedded store of a
runs directory (SQLite + an artifact folder: MLflow 3 refuses plain-folder stores) or a
tracking server; the runs `sample` and `ui` need; the UI's link to a search's trials."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import mlflow
from mlflow.tracking import MlflowClient

from gan_search.core.errors import ConfigError
from gan_search.core.vocabulary import Role
from gan_search.tracking.tags import CONFIRM_OF_TAG, ROLE_TAG, SEARCH_TAG, STATUS_TAG, TRIAL_TAG

VIEW_TAG = "mlflow.sharedViewState."  # + key: a saved view of the runs table (the UI's format)
# the UI's runs table shows these columns in the saved view of a search
VIEW_COLUMNS = ["metrics.`fid_lite_best`", "metrics.`fid_lite_std_at_best`",
                "metrics.`best_step`", "metrics.`collapse_at_best`", "metrics.`kid_best`",
                f"tags.`{STATUS_TAG}`", f"tags.`{ROLE_TAG}`", f"tags.`{CONFIRM_OF_TAG}`",
                "metrics.`exploits`"]
REMOTE_TIMEOUT_S = 5  # per request to a tracking server: a dead server must not hold the search


def store_paths(runs_dir: str) -> tuple[str, str]:
    """(tracking URI, artifact root) of the embedded store inside a runs directory."""
    root = Path(runs_dir).expanduser().resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def use_short_timeouts(tracking_uri: str | None) -> None:
    """For a tracking server: no retries and a short timeout per request (MLflow's default
    retries take minutes); a failed record is kept and retried by the tracker instead."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(REMOTE_TIMEOUT_S)


def check_store(runs_dir: str, tracking_uri: str | None) -> None:
    """Fail before any trial starts, with one line, when a tracking server is unreachable."""
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return
    use_short_timeouts(tracking_uri)
    try:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    except Exception as err:  # any failure to reach the server is the same one-line error
        reason = " ".join(str(err).split())[:200]
        raise ConfigError(f"--tracking-uri {tracking_uri}: cannot reach the MLflow tracking "
                          f"server ({reason}); start it, fix the URI, or leave --tracking-uri "
                          "out to use the embedded store") from None


def experiment_id(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = f"{artifact_root}/{name}" if artifact_root else None
    return client.create_experiment(name, artifact_location=location)


def save_view(client: MlflowClient, experiment: str, search: str, params: list[str]) -> None:
    """A saved view of the runs table for one search: its trials (not the parent), sorted by
    best FID-lite, with the scores, status, role and searched settings as columns."""
    state = {"searchFilter": f"tags.`{SEARCH_TAG}` = '{search}' and tags.`{TRIAL_TAG}` != ''",
             "orderByKey": "metrics.`fid_lite_best`", "orderByAsc": True,
             "selectedColumns": VIEW_COLUMNS + [f"params.`{p}`" for p in params]}
    now = int(time.time() * 1000)
    client.set_experiment_tag(experiment, VIEW_TAG + search, json.dumps(
        {"name": f"{search}: trials by best FID-lite", "createdAt": now, "updatedAt": now,
         "state": json.dumps(state)}))


def runs_url(base: str, experiment: str, search: str) -> str:
    """The runs table of one search in the UI's training (machine learning) mode, opened on
    the saved view; MLflow 3.17 opens experiments in its GenAI view without the parameter."""
    query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": search},
                      quote_via=quote, safe="")
    return f"{base.rstrip('/')}/#/experiments/{experiment}/runs?{query}"


def search_url(uri: str, search: str | None, base: str) -> str:
    """The UI link (at ``base``) to a search's trials in the store at ``uri``: ``search``,
    or the newest search there."""
    client = MlflowClient(uri)
    if search is None and not searches(client):
        return f"{base.rstrip('/')}/#/experiments"  # an empty store: the experiment list
    parent = find_search(client, search, uri)
    return runs_url(base, parent.info.experiment_id, parent.data.tags[SEARCH_TAG])


def require_store(runs_dir: str) -> str:
    """The embedded store's URI; one clear error when the runs directory has none."""
    uri = store_paths(runs_dir)[0]
    database = uri.removeprefix("sqlite:///")
    if not Path(database).is_file():
        raise ConfigError(f"no MLflow store in {runs_dir} (expected {database}); run "
                          "`gan-search run` first or pass --runs-dir")
    return uri


def searches(client: MlflowClient) -> list:
    """The parent runs of every search in the store, newest first."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.`{ROLE_TAG}` = '{Role.PARENT}'",
                              order_by=["attributes.start_time DESC"],
                              max_results=1000) if experiments else []


def find_search(client: MlflowClient, name: str | None, where: str) -> object:
    """The parent run of the search ``name``, or of the newest search."""
    parents = searches(client)
    if name is not None:
        parents = [p for p in parents if p.data.tags.get(SEARCH_TAG) == name]
    if not parents:
        which = f"no search named {name!r}" if name else "no search yet"
        raise ConfigError(f"--search {name}: {which} in {where}; `gan-search run` makes one" if name
                          else f"{which} in {where}; run `gan-search run` first")
    return parents[0]


def find_run(runs_dir: str, tracking_uri: str | None, run: str) -> tuple[MlflowClient, str]:
    """A run id, or "best": the winner of the most recent search in the store."""
    uri = tracking_uri or require_store(runs_dir)
    client = MlflowClient(uri)
    if run != "best":
        try:
            client.get_run(run)
        except mlflow.exceptions.MlflowException:
            raise ConfigError(f"--run {run}: no such run in {uri}") from None
        return client, run
    for parent in searches(client):
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
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--default-artifact-root", store_paths(runs_dir)[1], "--host", host,
            "--port", str(port)]


def logged_grid_steps(client: MlflowClient, run_id: str, key: str = "samples") -> list[int]:
    """The steps at which a run has a sample grid logged by ``log_image(key=, step=)``, one
    entry per grid (a step logged twice shows twice).

    MLflow has no public call that lists a run's logged images by step; its UI reads them
    from the artifact names ``images/<key>+step+<step>+timestamp+<ms>+<uuid>.png`` (plus a
    ``+compressed.webp`` preview), written by ``MlflowClient.log_image`` in the pinned
    MLflow 3.17. This is the one place that reads that naming (tests check it against what
    ``log_image`` really writes). A marker metric logged after the image was tried instead:
    a server that dies between MLflow's three writes of one image then gets the grid twice.
    """
    names = [f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(run_id, "images")]
    prefix = f"{key}+step+"
    return sorted(int(name[len(prefix):].split("+")[0]) for name in names
                  if name.startswith(prefix) and name.endswith(".png"))


def record_on_search(runs_dir: str, tracking_uri: str | None, name: str,
                     metrics: dict[str, float], file: Path) -> str | None:
    """Log what was measured of a finished search afterwards (the standard FID of its
    confirmation) on its parent run: ``metrics`` and ``file`` (under ``confirm/``). The
    run's id; None when the store holds no such search (it ran untracked)."""
    try:
        uri = tracking_uri or require_store(runs_dir)
        client = MlflowClient(uri)
        run_id = find_search(client, name, uri).info.run_id
    except ConfigError:  # no store, or no such search in it
        return None
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_artifact(run_id, str(file), "confirm")
    return run_id
