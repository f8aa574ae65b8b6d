"""The MLflow UI of a runs directory (``gan-search ui``): ``mlflow ui`` on its embedded store,
bound to 127.0.0.1 unless asked otherwise, and the link to a search's trials, best first,
printed (and opened where a browser is at hand); or, for a tracking server that runs
already, only the link."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gan_search.core.errors import ConfigError
from gan_search.tracking.store import check_store, require_store, search_url, ui_command


def show_link(tracking_uri: str, search: str | None, open_browser: bool) -> int:
    """A running server (a cluster head's): print (and open) the link, serve nothing."""
    check_store("", tracking_uri)
    url = search_url(tracking_uri, search, tracking_uri)
    print(f"the trials of {search or 'the latest search'} on {tracking_uri}, best "
          f"FID-lite first:\n{url}", flush=True)
    if open_browser and browser_at_hand():
        import webbrowser

        webbrowser.open(url)
    return 0


def serve(runs_dir: str, host: str, port: int, search: str | None, open_browser: bool) -> int:
    """Serve the UI on a runs directory's store until Ctrl-C; its exit code."""
    check_listen(host, port)
    command = ui_command(runs_dir, host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = search_url(require_store(runs_dir), search, f"http://{shown}:{port}")
    print(f"MLflow UI for {Path(runs_dir).resolve()} (Ctrl-C stops it); the trials of "
          f"{search or 'the latest search'}, best FID-lite first:\n{url}", flush=True)
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
