"""Serving a web UI from the command line (MLflow's, optuna-dashboard): the address checked
before anything starts, the server run until Ctrl-C, the link opened where a browser is at
hand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from gan_search.core.errors import ConfigError


def shown_host(host: str) -> str:
    """The host to put in a link (a wildcard bind address is reached at 127.0.0.1)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def serve_until_stopped(command: list[str], url: str, open_browser: bool) -> int:
    """Run a server command until it ends or Ctrl-C (then stopped); its exit code."""
    server = subprocess.Popen(command)
    try:
        if open_browser and browser_at_hand():
            open_when_up(url, server)
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=30)
        return 0


def check_listen(host: str, port: int) -> None:
    """--host / --port: an address of this machine and a free port, checked before starting."""
    import socket

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: must lie in 1..65535")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except socket.gaierror:
        raise ConfigError(f"--host {host}: not an address of this machine; use 127.0.0.1 (the "
                          "default) or 0.0.0.0") from None
    except OSError as err:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err});"
                          " pick a free --port, e.g. --port 5001") from None


def browser_at_hand() -> bool:
    """A graphical session (or $BROWSER): on a headless server, printing the link is all."""
    return bool(os.environ.get("BROWSER") or os.environ.get("DISPLAY") or
                os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin")


def open_when_up(url: str, server: Any, timeout: float = 60.0) -> None:
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url.split("#")[0], timeout=2):
                webbrowser.open(url)
                return
        except OSError:
            time.sleep(0.5)
