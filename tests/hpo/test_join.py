"""Joining a real Ray head started with `ray start --head` (token authentication on, as a
head where a token exists has it): --address host:port runs a search on a terminal (whose
live line is redrawn in place), auto finds the head; a wrong token, a missing head and a
closed port each fail in one line within the join bound."""

import json
import sys
import time
from pathlib import Path

import pytest

from helpers import free_port, run_cli, run_on_terminal, space_file, tiny_space
from gan_search.hpo.driver.cluster import JOIN_TIMEOUT_S
from ray_head import RayHead

pytestmark = pytest.mark.cluster

# trials of a few seconds, so that the terminal sees the live line redrawn
SPACE = tiny_space(name="join", data={"options": {"n": 256}},
                   fixed={"z_dim": 16, "batch_size": 32, "g_width": 8, "d_width": 8},
                   budget={"iters": 200, "eval_every": 100})


@pytest.fixture(scope="module")
def head():
    head = RayHead(num_cpus=2)
    yield head
    assert head.stop() == []  # nothing of the cluster left running


@pytest.fixture
def space(tmp_path):
    return space_file(SPACE, tmp_path, "join")


@pytest.fixture(scope="module")
def joined(head, tmp_path_factory):
    """`gan-search run --address host:port` on a terminal, as a user runs it: (exit code,
    the screen, the runs folder)."""
    folder = tmp_path_factory.mktemp("joined")
    command = [str(Path(sys.executable).parent / "gan-search"), "run", "--space",
               space_file(SPACE, folder, "join"), "--address", head.address, "--runs-dir",
               str(folder / "runs"), "--name", "joined", "--confirm", "0"]
    env = {**head.env, "GAN_SEARCH_LIVE_EVERY_S": "0.2"}
    code, screen = run_on_terminal(command, env=env)
    return code, screen, folder / "runs"


def test_a_search_joins_a_head_with_token_authentication(joined):
    code, screen, runs = joined
    assert code == 0, screen[-3000:]
    assert "InvalidAuthToken" not in screen
    board = json.loads((runs / "tune" / "joined" / "leaderboard.json").read_text())
    assert [t["status"] for t in board["trials"]] == ["finished", "finished"]


def test_a_live_progress_line_redraws_in_place_on_a_terminal(joined):
    _, screen, _ = joined
    redraws = [part for part in screen.split("\r\x1b[K")
               if part.lstrip("[ 0123456789s]").startswith("running:")]
    assert len(redraws) >= 2, screen[-3000:]
    assert all("/200 " in line and " it/s" in line and "ETA " in line for line in redraws)
    assert any("FID-lite" in line for line in redraws)  # the latest evaluation, once there is one
    assert "2/2 ended" in screen


def test_auto_is_the_head_ray_start_recorded_on_this_machine(head, monkeypatch):
    """What `--address auto` adds to a join: the head `ray start` recorded (in RAY_TMPDIR),
    reached with the token found on this machine."""
    from gan_search.hpo.driver import cluster

    monkeypatch.setattr(cluster, "_JOINED", {})
    for key, value in head.env.items():
        if key.startswith("RAY_"):
            monkeypatch.setenv(key, value)
    resolved = cluster.join_address("auto")  # reached, and the token taken (the probe)
    assert resolved.rsplit(":", 1)[1] == head.address.rsplit(":", 1)[1]  # the head's GCS port


@pytest.mark.parametrize("case,message", [
    ("wrong token", "the Ray head refused the token from RAY_AUTH_TOKEN: wrong or missing token"),
    ("no head recorded", "--address auto: no Ray head found on this machine"),
    ("closed port", "cannot reach a Ray cluster there"),
])
def test_joining_fails_in_one_line_within_the_bound(head, space, tmp_path, case, message):
    env, address = dict(head.env), head.address
    if case == "wrong token":
        env["RAY_AUTH_TOKEN"] = "not-the-token"
    elif case == "no head recorded":
        env["RAY_TMPDIR"], address = str(tmp_path), "auto"
    else:
        address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli("run", "--space", space, "--address", address, "--runs-dir",
                     str(tmp_path / "runs"), env=env, timeout=120)
    seconds = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and seconds < JOIN_TIMEOUT_S + 15
    assert not (tmp_path / "runs").exists()
