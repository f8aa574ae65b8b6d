"""Tracking never costs a search: the tracker reads only the small files of a checkpoint,
and a tracking server that stops mid-search loses nothing (a real `mlflow server`)."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest
from ray import tune

from gan_search.tracking import ROLE_TAG, STATUS_TAG, TRIAL_TAG, MlflowTracker
from gan_search.tracking.store import logged_grid_steps
from helpers import free_port, run_cli, search_runs, space_file, tiny_space


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
    (tmp_path / "space.yaml").write_text("data: {source: fake}\n")
    tracker = MlflowTracker(str(tmp_path), None, "exp", "s1", {"searched": []}, {},
                            str(tmp_path / "space.yaml"), tmp_path / "s1")
    tracker.start()
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


SPACE = tiny_space(name="faults", data={"options": {"n": 200}}, budget={"trials": 3, "eval_samples": 50},
                   concurrency=1)


def test_a_tracking_server_that_stops_mid_search_loses_nothing(tmp_path):
    store, port = tmp_path / "server", free_port()
    store.mkdir()
    uri = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "gan-search"), "run", "--space",
               space_file(SPACE, tmp_path, "faults"), "--runs-dir", str(tmp_path / "runs"), "--name",
               "faulty", "--tracking-uri", uri, "--confirm", "0"]
    started = time.monotonic()
    server = mlflow_server(store, port)
    print(f"server up after {time.monotonic() - started:.1f} s")
    try:
        search = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        seen = []
        for line in search.stdout:  # stop the server once the first trial has ended
            seen.append(line)
            if "1/3 ended" in line:
                stop(server)
        search.wait(timeout=300)
        output = "".join(seen)
        assert search.returncode == 0, output[-3000:]
        assert "did not record" in output and "retried by --resume" in output
        board = json.loads((tmp_path / "runs" / "tune" / "faulty" / "leaderboard.json").read_text())
        # every Tune checkpoint was registered all the same: each trial kept its best
        assert all(t["status"] == "finished" and t["checkpoint"] and
                   Path(t["checkpoint"], "samples.png").is_file() for t in board["trials"])
        pending = tmp_path / "runs" / "tune" / "faulty" / "mlflow_pending" / "records.json"
        assert pending.is_file()

        print(f"search done after {time.monotonic() - started:.1f} s")
        server = mlflow_server(store, port)  # back, with the same store
        print(f"server back after {time.monotonic() - started:.1f} s")
        resumed = run_cli(*command[1:], "--resume", timeout=300)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert "did not record" not in resumed.stdout and not pending.exists()
        client, parents, children = search_runs(uri, "faulty")
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert parents[0].data.tags[ROLE_TAG] == "parent"
        assert sorted(c.data.tags[TRIAL_TAG] for c in children) == \
            sorted(t["trial_id"] for t in board["trials"])  # every trial exactly once
        for child in children:
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid_lite")]
            assert sorted(steps) == [20, 40]  # none missing, none twice
            assert logged_grid_steps(client, child.info.run_id) == [20, 40]  # each grid once
            assert child.data.tags[STATUS_TAG] == "finished" and child.info.status == "FINISHED"
    finally:
        stop(server)
