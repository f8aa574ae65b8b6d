"""Joining a Ray cluster (``--address``): works, or fails within a bounded time in one line.

- ``auto`` is the head that ``ray start`` recorded on this machine (the file
  ``ray_current_cluster`` in Ray's temp folder, ``$RAY_TMPDIR/ray`` or ``/tmp/ray``), never
  whatever Ray process happens to run here; none recorded -> "no head found".
- ``host:port`` is checked for a listener first (seconds, not Ray's minutes of retries).
- Token authentication (Ray 2.60): a head started by ``ray start`` uses it when a token
  exists on that machine, but a driver that names an address does not send one unless
  ``RAY_AUTH_MODE=token``. A token is available from ``RAY_AUTH_TOKEN``,
  ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` (what ``ray up`` and ``ray start`` use);
  when there is one, token mode is turned on (a token-mode driver also joins a head without
  authentication). A wrong token is named as such.
- Everything is probed in a short-lived process with short timeouts first, so Ray's own
  retry warnings never reach the terminal and the wait is bounded (``JOIN_TIMEOUT_S``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from gan_search.core.errors import ConfigError

JOIN_TIMEOUT_S = 30

# one attempt to reach the head's GCS with Ray's own client, with short timeouts
_PROBE = """
import sys
try:
    from ray._raylet import GcsClient
    GcsClient(address=sys.argv[1])
    print("ok")
except Exception as err:  # noqa: BLE001
    text = " ".join(str(err).split())
    auth = type(err).__name__ == "AuthenticationError" or "InvalidAuthToken" in text
    print(("auth " if auth else "fail ") + text[:400])
"""
_PROBE_ENV = {"RAY_py_gcs_connect_timeout_s": "5", "RAY_gcs_rpc_server_connect_timeout_s": "3",
              "RAY_NUM_REDIS_GET_RETRIES": "1"}


def resolve_address(address: str) -> str:
    """``auto`` -> the recorded head's host:port; host:port and ray://... are checked for form."""
    if address == "auto":
        recorded = ray_address_file()
        if not recorded.is_file() or not recorded.read_text().strip():
            raise ConfigError(f"--address auto: no Ray head found on this machine (no {recorded}); "
                              "start one with `ray start --head`, run on the head of a `ray up` "
                              "cluster, or give --address HOST:PORT")
        return recorded.read_text().strip()
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected host:port (e.g. 10.0.0.5:6379), "
                          "ray://host:10001 or auto")
    return address


def ray_address_file() -> Path:
    """Where ``ray start`` records the head's address (Ray's own rule for its temp folder)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A listener at host:port, or one line; Ray itself would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(f"--address {address}: cannot reach a Ray cluster there ({err}); "
                          "check the address and that the head is up (`ray status` on it), or "
                          "leave --address out to run locally") from None


def token_source() -> str | None:
    """Where a Ray auth token is available on this machine, if anywhere (Ray's order)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return path
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() and default.read_text().strip() else None


def token_mode(env: dict[str, str]) -> dict[str, str]:
    """``env`` with token mode on when a token is available and no mode was chosen."""
    if token_source() and "RAY_AUTH_MODE" not in env:
        return {**env, "RAY_AUTH_MODE": "token"}
    return env


def probe(address: str, timeout: float = JOIN_TIMEOUT_S) -> None:
    """Reach the head once with Ray's client in a child process; one line on any failure."""
    env = {**token_mode(dict(os.environ)), **_PROBE_ENV}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, address], env=env, timeout=timeout,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"--address {address}: no answer from a Ray head within {timeout:.0f} s; "
                          "check the address, the firewall and that the head is up") from None
    answer = (done.stdout.strip().splitlines() or ["fail the probe printed nothing"])[-1]
    kind, _, detail = answer.partition(" ")
    if kind == "auth":
        source = token_source()
        have = f"the token from {source}" if source else "no token (none found)"
        raise ConfigError(f"--address {address}: the Ray head refused {have}: wrong or missing "
                          "token; use the head's token (`ray get-auth-token` on the head) in "
                          "RAY_AUTH_TOKEN or ~/.ray/auth_token")
    if kind != "ok":
        raise ConfigError(f"--address {address}: could not join the Ray cluster there "
                          f"({detail[:200]}); check the address and that the head is up")


_JOINED: dict[str, str] = {}  # --address -> the checked address, once per process


def join_address(address: str) -> str:
    """Everything before ``ray.init(address=...)``: the address to use, checked. Call it
    before ray is imported: Ray reads ``RAY_AUTH_MODE`` when it loads."""
    if address in _JOINED:
        return _JOINED[address]
    resolved = resolve_address(address)
    check_reachable(resolved)
    if "ray" not in sys.modules:
        # Ray reads the mode once, when it loads: in a process that has loaded it already
        # (a program calling run_search), changing it would only confuse Ray's children
        os.environ.update(token_mode(dict(os.environ)))
    if resolved.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (Ray Client's transport; imported to check it is there)
        except ImportError:
            raise ConfigError(f"--address {address}: a ray:// address needs Ray Client: pip "
                              "install 'ray[client]==2.60.*', or use the head's host:6379 "
                              "from a node of the cluster") from None
    else:
        probe(resolved)
    _JOINED[address] = resolved
    return resolved
