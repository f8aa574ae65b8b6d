"""The README's cluster walk-through for real, on this machine (slow: it installs the
project with its pinned dependencies for the cluster's user, several minutes):

    python -m pytest -m slow tests/test_walkthrough.py

An sshd on 127.0.0.1:22 (its own config and host key, started and stopped by this test)
lets `ray up` reach "the servers" of cluster-onprem.yaml, with the head at 127.0.0.1, as a
user made for the test (`ray stop` and `ray down` stop only that user's Ray). The test runs
`ray up`, `ray exec` of a small `gan-search run --address auto`, checks that the head's MLflow
server holds the search, runs `ray down`, stops the MLflow server by its process id, and
checks that nothing of the test user is left running. The cluster file it uses is
cluster-onprem.yaml with only the addresses, user, key, shared folder and venv changed: the
setup and start commands are the file's own, the same cluster/*.sh as cluster.yaml.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
USER = "gsr-walk"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
RAY = str(Path(sys.executable).parent / "ray")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def run(command: list[str], timeout: int = 1800, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    print(f"$ {' '.join(command)[:200]} -> {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def user_processes() -> list[str]:
    out = subprocess.run(["ps", "-u", USER, "-o", "pid=,comm="], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def cluster_user(tmp_path):
    """A user of its own, with a key for ssh and $TMPDIR in its home (so its Ray's files
    stay out of /tmp/ray), and an sshd on 127.0.0.1:22 for it; all removed afterwards."""
    if os.geteuid() != 0 or not Path(SSHD).exists() or not shutil.which("rsync") or \
            not port_free(22):
        pytest.skip("needs root, openssh-server and rsync (apt-get install openssh-server "
                    "rsync) and a free 127.0.0.1:22")
    if subprocess.run(["id", USER], capture_output=True).returncode == 0:
        subprocess.run(["userdel", "-r", USER], capture_output=True)  # left by an interrupted run
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)  # no password, but not locked: ssh keys work
    home = Path(pwd.getpwnam(USER).pw_dir)
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (home / ".ssh" / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    (home / "tmp").mkdir(exist_ok=True)
    (home / ".bashrc").write_text('export TMPDIR="$HOME/tmp"\n')
    pip_conf = Path.home() / ".config" / "pip" / "pip.conf"  # this machine's package sources
    if pip_conf.is_file():
        (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
        shutil.copy(pip_conf, home / ".config" / "pip" / "pip.conf")
    subprocess.run(["chown", "-R", f"{USER}:{USER}", str(home)], check=True)
    (home / ".ssh" / "authorized_keys").chmod(0o600)
    host_key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    config = tmp_path / "sshd_config"
    config.write_text(f"ListenAddress 127.0.0.1\nPort 22\nHostKey {host_key}\nPidFile "
                      f"{tmp_path / 'sshd.pid'}\nAllowUsers {USER}\nPasswordAuthentication no\n"
                      "UsePAM no\nStrictModes no\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = subprocess.Popen([SSHD, "-D", "-f", str(config)], start_new_session=True)
    deadline = time.monotonic() + 30
    while port_free(22) and time.monotonic() < deadline:
        time.sleep(0.2)
    yield home, key
    os.killpg(sshd.pid, signal.SIGTERM)  # the sshd this test started
    sshd.wait(timeout=30)
    deadline = time.monotonic() + 30  # its sessions end with ray's ssh control masters
    while time.monotonic() < deadline and any("sshd" not in p for p in user_processes()):
        time.sleep(1)
    time.sleep(max(0.0, min(15.0, deadline - time.monotonic())))
    left = [p for p in user_processes() if not p.split()[-1].startswith("sshd")]
    for line in user_processes():  # anything of the test user still running: stopped
        os.kill(int(line.split()[0]), signal.SIGKILL)
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    assert not left, f"left running by the walk-through: {left}"


def walkthrough_config(tmp_path: Path, home: Path, key: Path) -> Path:
    """cluster-onprem.yaml with the test's head, user, key and folders; nothing else."""
    raw = yaml.safe_load((ROOT / "cluster-onprem.yaml").read_text())
    aws = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    # the commands this test runs are the ones cluster.yaml runs on AWS
    assert raw["head_start_ray_commands"] == aws["head_start_ray_commands"]
    assert raw["worker_start_ray_commands"] == aws["worker_start_ray_commands"]
    assert raw["setup_commands"][0].split()[-2] == aws["setup_commands"][0].split()[1]
    raw.update(cluster_name="gan-search-walkthrough", min_workers=0, max_workers=0)
    raw["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    raw["auth"] = {"ssh_user": USER, "ssh_private_key": str(key)}
    setup = raw["setup_commands"][0].rsplit(" ", 1)[0]  # the shared folder is named last
    raw["setup_commands"] = [f"{setup} {home}/shared"]
    path = tmp_path / "cluster-walkthrough.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.timeout(3600)
def test_ray_up_exec_attach_down_on_this_machine(cluster_user, tmp_path):
    home, key = cluster_user
    token = Path.home() / ".ray" / "auth_token"
    if not token.is_file():  # the README's step 0: the token every node gets
        run([RAY, "get-auth-token", "--generate"])
    config = walkthrough_config(tmp_path, home, key)
    env = {**os.environ}
    env.pop("RAY_AUTH_MODE", None)
    started = time.monotonic()
    up = run([RAY, "up", "-y", "--no-config-cache", str(config)], cwd=ROOT, env=env)
    up_seconds = time.monotonic() - started
    try:
        assert up.returncode == 0
        search = run([RAY, "exec", str(config), "cd ~/gan-search && gan-search run --space smoke "
                      "--trials 2 --iters 20 --confirm 0 --address auto --name walked"],
                     cwd=ROOT, env=env, timeout=900)
        assert search.returncode == 0 and "walked took" in search.stdout
        link = run([RAY, "exec", str(config), "gan-search ui --no-browser --search walked"],
                   cwd=ROOT, env=env, timeout=300)
        assert link.returncode == 0 and "viewStateShareKey=walked" in link.stdout
        from mlflow.tracking import MlflowClient  # the head's server, on this machine's loopback

        client = MlflowClient("http://127.0.0.1:5000")
        runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id],
                                  filter_string="tags.`gan_search.search` = 'walked'")
        assert len(runs) == 3  # the parent and its two trials
        # Tune's state went to the shared folder setup-node.sh named
        assert (home / "shared" / "walked" / "leaderboard.json").is_file()
    finally:
        down = run([RAY, "down", "-y", str(config)], cwd=ROOT, env=env, timeout=600)
        pid_file = home / "gan_search_runs" / "mlflow-server.pid"
        if pid_file.is_file():  # ray down stops Ray; the MLflow server keeps the results
            os.killpg(os.getpgid(int(pid_file.read_text())), signal.SIGTERM)
        time.sleep(3)
    assert down.returncode == 0
    print(f"walk-through: ray up {up_seconds:.0f} s, all {time.monotonic() - started:.0f} s")
