"""Joining a real Ray head started with `ray start --head` (token authentication on, as a
head where a token exists has it): --address host:port and auto run a search; a wrong
token, a missing head and a closed port each fail in one line within the join bound."""

import json
import time

import pytest
import yaml

from conftest import run_cli
from gan_search.search.cluster import JOIN_TIMEOUT_S
from ray_head import RayHead, free_port

pytestmark = pytest.mark.cluster

SPACE = {"name": "join", "data": {"source": "fake", "size": 16, "channels": 3, "options": {"n": 200}},
         "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}},
         "fixed": {"z_dim": 8, "batch_size": 32, "g_width": 4, "d_width": 4},
         "budget": {"trials": 2, "iters": 20, "eval_every": 20, "eval_samples": 50},
         "scheduler": {"kind": "none"}, "resources": {"cpu": 1}, "concurrency": 2}


@pytest.fixture(scope="module")
def head():
    head = RayHead(num_cpus=2)
    yield head
    assert head.stop() == []  # nothing of the cluster left running


@pytest.fixture
def space(tmp_path):
    (tmp_path / "join.yaml").write_text(yaml.safe_dump(SPACE))
    return str(tmp_path / "join.yaml")


@pytest.mark.parametrize("how", ["host:port", "auto"])
def test_a_search_joins_a_head_with_token_authentication(head, space, tmp_path, how):
    address = head.address if how == "host:port" else "auto"
    result = run_cli("run", "--space", space, "--address", address, "--runs-dir",
                     str(tmp_path / "runs"), "--name", "joined", "--confirm", "0", env=head.env,
                     timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "InvalidAuthToken" not in result.stderr
    board = json.loads((tmp_path / "runs" / "tune" / "joined" / "leaderboard.json").read_text())
    assert [t["status"] for t in board["trials"]] == ["finished", "finished"]


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
