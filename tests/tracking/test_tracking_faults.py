"""Tracking never costs a search: the tracker reads only the small files of a checkpoint,
and a tracking server that goes away mid-search loses nothing (a real `mlflow server`,
cut off and back by a loopback proxy)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest
from ray import tune

from gan_search.tracking import ROLE_TAG, STATUS_TAG, TRIAL_TAG, MlflowTracker
from gan_search.tracking.store import logged_grid_steps
from helpers import free_port, search_runs, tiny_space, write_space


class Recording(pyarrow.fs.FileSystemHandler):
    """The local filesystem, noting every file opened for reading."""

    def __init__(self):
        self.local, self.opened = pyarrow.fs.LocalFileSystem(), []

    def open_input_file(self, path):
        self.opened.append(Path(path).name)
        return self.local.open_input_file(path)

    def open_input_stream(self, path):
        self.opened.append(Path(path).name)
        return self.local.open_input_stream(path)

    def get_type_name(self):
        return "recording"

    def normalize_path(self, path):
        return path

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    # the rest as the local filesystem does it
    def copy_file(self, src, dest):
        self.local.copy_file(src, dest)

    def create_dir(self, path, recursive):
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("not here")

    def delete_file(self, path):
        self.local.delete_file(path)

    def move(self, src, dest):
        self.local.move(src, dest)

    def open_append_stream(self, path, metadata):
        return self.local.open_append_stream(path, metadata=metadata)

    def open_output_stream(self, path, metadata):
        return self.local.open_output_stream(path, metadata=metadata)


def test_the_tracker_never_opens_a_trials_full_checkpoint(tmp_path):
    """Only samples.png (each evaluation) and generator.pt (the best, at the end): with
    --storage s3://... the trainer state (G, D, both Adams) is never downloaded."""
    import torch
    from PIL import Image

    folder = tmp_path / "trial_x" / "checkpoint_000000"
    folder.mkdir(parents=True)
    (folder / "trainer.pt").write_bytes(b"the full trainer state: never read")
    torch.save({"gen": {}, "config": {}, "step": 20}, folder / "generator.pt")
    Image.new("RGB", (18, 18), (200, 10, 10)).save(folder / "samples.png")
    handler = Recording()
    checkpoint = tune.Checkpoint(str(folder), filesystem=pyarrow.fs.PyFileSystem(handler))
    tracker = started_tracker(tmp_path)
    best = SimpleNamespace(metrics={"fid_lite": 5.0}, checkpoint=checkpoint)
    trial = SimpleNamespace(trial_id="x", config={"lr_g": 0.001},
                            last_result={"step": 20, "fid_lite": 5.0, "status": "finished"},
                            run_metadata=SimpleNamespace(checkpoint_manager=SimpleNamespace(
                                best_checkpoint_results=[best])))
    tracker.on_trial_start(0, [], trial)
    tracker.on_trial_result(0, [], trial, trial.last_result)
    tracker.on_checkpoint(0, [], trial, checkpoint)
    tracker.on_trial_complete(0, [], trial)
    tracker.writer.flush()  # the writer thread has written everything
    assert "trainer.pt" not in handler.opened
    assert set(handler.opened) == {"samples.png", "generator.pt"}
    run_id = tracker.ledger.records["x"].run_id
    client = tracker.recorder.client
    assert {f.path for f in client.list_artifacts(run_id, "checkpoint")} == \
        {"checkpoint/generator.pt", "checkpoint/samples.png"}
    assert [f.path for f in client.list_artifacts(run_id, "images") if f.path.endswith(".png")]


def started_tracker(tmp_path: Path) -> MlflowTracker:
    """A tracker on an embedded store in ``tmp_path``, its parent run started."""
    (tmp_path / "space.yaml").write_text("data: {source: fake}\n")
    tracker = MlflowTracker(str(tmp_path), None, "exp", "s1", {"searched": []}, {},
                            str(tmp_path / "space.yaml"), tmp_path / "s1")
    tracker.start()
    return tracker


def test_a_trial_retried_from_an_older_checkpoint_logs_each_step_once(tmp_path):
    """A lost node's trial restarts from its checkpoint at step 40 and reports step 60 (and
    its grid) a second time: MLflow holds every evaluation and grid once."""
    from PIL import Image

    tracker = started_tracker(tmp_path)
    trial = SimpleNamespace(trial_id="x", config={"lr_g": 0.001}, last_result={})

    def evaluation(step: int, fid: float) -> None:
        trial.last_result = {"step": step, "fid_lite": fid}
        tracker.on_trial_result(0, [], trial, trial.last_result)
        folder = tmp_path / f"checkpoint_{step:06d}_{fid}"
        folder.mkdir()
        Image.new("RGB", (18, 18), (step, 10, 10)).save(folder / "samples.png")
        tracker.on_checkpoint(0, [], trial, tune.Checkpoint(str(folder)))
        tracker.writer.flush()  # MLflow has it before the repeat comes

    tracker.on_trial_start(0, [], trial)
    for step, fid in ((20, 9.0), (40, 8.0), (60, 7.0), (60, 7.5), (80, 6.0)):  # 60 again
        evaluation(step, fid)
    tracker.writer.flush()
    run_id, client = tracker.ledger.records["x"].run_id, tracker.recorder.client
    history = client.get_metric_history(run_id, "fid_lite")
    assert sorted((m.step, m.value) for m in history) == [(20, 9.0), (40, 8.0), (60, 7.0), (80, 6.0)]
    assert logged_grid_steps(client, run_id) == [20, 40, 60, 80]


def mlflow_server(store: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on loopback in a session of its own (stopped by its process group)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--default-artifact-root", (store / "artifacts").as_uri(), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    pytest.fail("mlflow server did not start")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)


SPACE = tiny_space(name="faults", budget={"trials": 3}, concurrency=1)


class Gate(threading.Thread):
    """A loopback TCP proxy in front of a server: ``close()`` drops every connection and
    refuses new ones (the server is gone, as far as a client can tell), ``open()`` lets
    connections through again. One real server serves both halves of the test."""

    def __init__(self, upstream: int) -> None:
        super().__init__(daemon=True)
        self.upstream, self.closed, self.live = upstream, False, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            if self.closed:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.live += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:  # one side hung up (an idle keep-alive, say): hang up the other side too
            for end in (source, sink):
                Gate._hang_up(end)

    @staticmethod
    def _hang_up(end: socket.socket) -> None:
        try:  # shutdown sends the FIN at once, even while another thread waits in recv
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()

    def close(self) -> None:
        self.closed = True
        for end in self.live:
            self._hang_up(end)
        self.live = []

    def open(self) -> None:
        self.closed = False


def test_a_tracking_server_that_goes_away_mid_search_loses_nothing(tmp_path, monkeypatch):
    """The server becomes unreachable once the first trial has ended, the search goes on,
    keeps what MLflow did not take and says so; the server comes back and --resume writes
    every record exactly once."""
    from gan_search.app import run_search
    from gan_search.core.config import search_config

    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(key, "")  # the search sets them; gone again after the test
    store, port = tmp_path / "server", free_port()
    store.mkdir()
    server = mlflow_server(store, port)
    gate = Gate(port)
    gate.start()
    uri = f"http://127.0.0.1:{gate.port}"
    config = search_config(write_space(SPACE, tmp_path, "faults"), runs_dir=str(tmp_path / "runs"),
                           name="faulty", confirm=0)
    try:
        lines, cut = [], []

        def log(line: str) -> None:
            lines.append(line)
            if "1/3 ended" in line and not cut:  # the first trial has ended: the server goes
                cut.append(len(lines))  # this line's number (the writer thread logs too)
                gate.close()
        outcome = run_search(config, tracking_uri=uri, log=log)
        output = "\n".join(lines)
        warned = [i for i, line in enumerate(lines, 1) if "did not take a record" in line]
        assert cut and warned and warned[0] > cut[0], output  # MLflow took records until then
        assert "did not record" in output and "retried by --resume" in output, output
        # every Tune checkpoint was registered all the same: each trial kept its best
        assert all(r.status == "finished" and Path(r.checkpoint, "samples.png").is_file()
                   for r in outcome.rows)
        pending = tmp_path / "runs" / "tune" / "faulty" / "mlflow_pending" / "records.json"
        assert pending.is_file()

        gate.open()  # back, with the same store
        lines.clear()
        run_search(config, resume=True, tracking_uri=uri, log=lines.append)
        assert not any("did not record" in line for line in lines) and not pending.exists()
        client, parents, children = search_runs(uri, "faulty")
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert parents[0].data.tags[ROLE_TAG] == "parent"
        assert sorted(c.data.tags[TRIAL_TAG] for c in children) == \
            sorted(r.trial_id for r in outcome.rows)  # every trial exactly once
        for child in children:
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid_lite")]
            assert sorted(steps) == [20, 40]  # none missing, none twice
            assert logged_grid_steps(client, child.info.run_id) == [20, 40]  # each grid once
            assert child.data.tags[STATUS_TAG] == "finished" and child.info.status == "FINISHED"
    finally:
        gate.close()
        gate.listener.close()
        stop(server)


def test_a_resumed_member_whose_settings_changed_keeps_being_recorded(tmp_path):
    """--resume of a PBT search: the resumed tracker meets members whose settings a copy
    changed since their runs were made (Tune's config of them is the new one), one seen
    starting first, one seen first with a result. Their new tags and evaluations are
    written; the parameters each run was made with stay (MLflow refuses to change one: a
    member's later records were lost)."""
    from gan_search.tracking.tags import LINEAGE_TAG

    tracker = started_tracker(tmp_path)
    for member in ("m", "k"):
        before = SimpleNamespace(trial_id=member, config={"lr_g": 0.001}, last_result={})
        tracker.on_trial_start(0, [], before)
        tracker.on_trial_result(0, [], before, {"step": 20, "fid_lite": 9.0})
    tracker.writer.flush()
    tracker.ledger.records.clear()  # the resumed process: no record yet, looks in MLflow
    tracker.ledger.resumed = True
    copy = '[{"member": "m", "from": "n", "step": 20}]'
    for member in ("m", "k"):
        after = SimpleNamespace(trial_id=member, config={"lr_g": 0.004}, last_result={})
        if member == "m":
            tracker.on_trial_start(0, [], after)
            tracker.writer.flush()
        tracker.on_trial_result(0, [], after, {"step": 40, "fid_lite": 7.0, "lineage": copy})
    tracker.writer.flush()
    assert not tracker.ledger.left(), tracker.recorder.last_error
    client = tracker.recorder.client
    for member in ("m", "k"):
        run = client.get_run(tracker.ledger.records[member].run_id)
        assert run.data.params["lr_g"] == "0.001" and LINEAGE_TAG in run.data.tags, member
        history = client.get_metric_history(run.info.run_id, "fid_lite")
        assert sorted((m.step, m.value) for m in history) == [(20, 9.0), (40, 7.0)]
