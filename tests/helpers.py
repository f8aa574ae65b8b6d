"""What many tests need, written once: a tiny space with overrides, the CLI run in-process
or as the installed command, the MLflow runs of a search, a free port, FID weights."""

from __future__ import annotations

import contextlib
import copy
import io
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The smallest space that trains for real: fake 16 px images in four classes, models a few
# channels wide, two evaluations. Tests override what they are about.
TINY = {
    "data": {"source": "fake", "size": 16, "channels": 3, "options": {"n": 256, "classes": 4}},
    "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}},
    "fixed": {"z_dim": 8, "batch_size": 32, "g_width": 4, "d_width": 4},
    "budget": {"trials": 2, "iters": 40, "eval_every": 20, "eval_samples": 64},
    "strategy": "tpe",  # every trial its whole budget
    "scheduler": {"collapse_threshold": 1.0},  # tiny models: never collapsed
    "resources": {"cpu": 1},
    "concurrency": 2,
}


def tiny_space(**overrides: Any) -> dict[str, Any]:
    """TINY with sections replaced by ``overrides`` (``budget={"trials": 4}`` updates the
    budget's keys; ``parameters=...`` and ``fixed=...`` replace those sections whole)."""
    raw = copy.deepcopy(TINY)
    for key, value in overrides.items():
        merge = isinstance(value, dict) and key in ("data", "budget", "scheduler", "resources")
        raw[key] = {**raw.get(key, {}), **value} if merge else value
    return raw


def write_space(raw: dict[str, Any], folder: Path, name: str = "tiny") -> Any:
    """A space file on disk, as a user has one (the search logs it to MLflow); its spec."""
    from gan_search.core.space import load_space

    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_space(str(path))


def space_file(raw: dict[str, Any], folder: Path, name: str = "tiny") -> str:
    """The path of a written space file (for the command line)."""
    write_space(raw, folder, name)
    return str(Path(folder) / f"{name}.yaml")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> Result:
    """``gan-search ARGS`` in this process (what ``main`` returns, prints and exits with)."""
    from gan_search.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = int(exit_.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed `gan-search` entry point as a user would (a process of its own:
    for what needs one, such as signals, a terminal or a fresh Ray)."""
    script = Path(sys.executable).parent / "gan-search"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gan_search.cli"]
    return subprocess.run([*command, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_on_terminal(command: list[str], env: dict | None = None, timeout: int = 300,
                    columns: int = 240) -> tuple[int, str]:
    """A command on a pseudo-terminal ``columns`` wide, as in a user's shell: (exit code,
    what the screen got, control sequences included)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(command, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=timeout)
    os.close(leader)
    return code, b"".join(chunks).decode(errors="replace")


def search_runs(where: str, search: str) -> tuple[Any, list, list]:
    """(client, parent runs, child runs) of a search in an MLflow store: a runs directory
    (its embedded store) or a tracking server's URI."""
    from mlflow.tracking import MlflowClient

    from gan_search.tracking import SEARCH_TAG, store_paths

    client = MlflowClient(where if "://" in where else store_paths(where)[0])
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, filter_string=f"tags.`{SEARCH_TAG}` = '{search}'")
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in found if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def interrupt(command, when):
    """Run the CLI and send it Ctrl-C (SIGINT) at the first output line that ``when`` accepts."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, seen = time.monotonic() + 240, []
    for line in proc.stdout:
        seen.append(line)
        if when(line, seen) or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    return "".join(seen) + rest


def random_fid_weights(path):
    """The standard FID network's state dict (1008-class head) with random weights, as a
    file at ``path`` (the real weights are a download; the architecture is torch-fidelity's)."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    empty = path.with_name("empty.pth")
    torch.save({}, empty)
    loading = FeatureExtractorInceptionV3.load_state_dict
    FeatureExtractorInceptionV3.load_state_dict = lambda self, state, *a, **k: None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(empty))
    finally:
        FeatureExtractorInceptionV3.load_state_dict = loading
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():  # He-initialised: the features neither vanish nor explode
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * \
                (2 / fan_in) ** 0.5
    torch.save(net.state_dict(), path)
    return path
