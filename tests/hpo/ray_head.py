"""A real Ray head started with `ray start --head` for tests, stopped by its own session.

`ray start` leaves its daemons in the process group and session of the process that ran it
(here a new session); Ray's worker processes get process groups of their own but stay in
that session. Stopping sends SIGTERM in the order `ray stop` uses (raylets, the rest, the
GCS), then SIGKILL to every process group of the session: nothing outside it is touched."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import free_port

RAY = str(Path(sys.executable).parent / "ray")

# Ray's fake multi-node provider: GPU worker nodes that the autoscaler "launches" as local
# processes, for a head without a GPU (min_workers 0: none until trials ask for a GPU)
FAKE_AUTOSCALER = """
cluster_name: gan-search-test
max_workers: 2
upscaling_speed: 1.0
idle_timeout_minutes: 1
provider:
  type: fake_multinode
  gcs_address: "127.0.0.1:{port}"
  use_node_id_as_ip: true
  disable_node_updaters: true
  disable_launch_config_check: true
available_node_types:
  ray.head.default:
    resources: {{CPU: 1, GPU: 0}}
    node_config: {{}}
    max_workers: 0
  ray.worker.gpu:
    resources: {{CPU: 2, GPU: 1, object_store_memory: 100000000}}
    node_config: {{}}
    min_workers: 0
    max_workers: 2
head_node_type: ray.head.default
auth: {{}}
docker: {{}}
initialization_commands: []
setup_commands: []
head_setup_commands: []
worker_setup_commands: []
head_start_ray_commands: []
worker_start_ray_commands: []
file_mounts: {{}}
cluster_synced_files: []
file_mounts_sync_continuously: false
rsync_exclude: []
rsync_filter: []
"""


def _session_processes(sid: int) -> list[tuple[int, int, str]]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,sid=,stat=,comm="], capture_output=True,
                         text=True).stdout
    rows = []
    for line in out.splitlines():
        pid, pgid, session, stat, comm = line.split(None, 4)
        if int(session) == sid and not stat.startswith("Z"):
            rows.append((int(pid), int(pgid), comm.strip()))
    return rows


def _term_and_wait(sid: int, pids: list[int], grace: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and set(pids) & {p for p, _, _ in _session_processes(sid)}:
        time.sleep(0.05)


def stop_session(sid: int, grace: float = 5.0) -> list:
    """Stop every process of the session ``sid``; returns what was still alive at the end."""
    rows = _session_processes(sid)
    _term_and_wait(sid, [p for p, _, c in rows if c == "raylet"], grace)
    _term_and_wait(sid, [p for p, _, c in rows if c not in ("raylet", "gcs_server")], grace)
    _term_and_wait(sid, [p for p, _, c in rows if c == "gcs_server"], grace)
    for pgid in {g for _, g, _ in _session_processes(sid)}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    time.sleep(0.5)
    return _session_processes(sid)


class RayHead:
    """`ray start --head` on 127.0.0.1:<port> with token authentication (a token file made
    for the test), in a temp folder of its own; ``env`` is what the test's drivers need."""

    def __init__(self, num_cpus: int = 2, autoscaling: bool = False, extra_env: dict | None = None):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="gsr-", dir="/tmp"))  # short: socket paths
        self.token_file = self.root / "auth_token"
        self.token_file.write_text("gan-search-test-token-" + os.urandom(8).hex())
        self.env = {**os.environ, "RAY_TMPDIR": str(self.root),
                    "RAY_AUTH_TOKEN_PATH": str(self.token_file)}
        self.env.pop("RAY_AUTH_MODE", None)  # drivers must find the token by themselves
        self.env.pop("RAY_ADDRESS", None)
        head_env = {**self.env, "RAY_AUTH_MODE": "token", **(extra_env or {})}
        command = [RAY, "start", "--head", f"--port={self.port}", f"--num-cpus={num_cpus}",
                   "--num-gpus=0", "--object-store-memory=150000000", "--disable-usage-stats",
                   f"--temp-dir={self.root / 'ray'}", "--include-dashboard=false"]
        if autoscaling:
            config = self.root / "autoscaler.yaml"
            config.write_text(FAKE_AUTOSCALER.format(port=self.port))
            command.append(f"--autoscaling-config={config}")
            head_env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        started = subprocess.Popen(command, env=head_env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.sid = started.pid  # a new session: its id is the pid of `ray start`
        output, _ = started.communicate(timeout=120)
        if started.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed: {output[-3000:]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> list:
        assert _session_processes(self.sid), "the head's processes are not in its session"
        left = stop_session(self.sid)
        shutil.rmtree(self.root, ignore_errors=True)
        return left
