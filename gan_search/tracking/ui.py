"""The MLflow UI of a runs directory (``gan-search ui``): ``mlflow ui`` on its embedded store,
bound to 127.0.0.1 unless asked otherwise, and the link to a search's trials, best first,
printed (and opened where a browser is at hand); or, for a tracking server that runs
already, only the link."""

from __future__ import annotations

from pathlib import Path

from gan_search.core.serving import (browser_at_hand, check_listen, serve_until_stopped,
                                     shown_host)
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
    url = search_url(require_store(runs_dir), search, f"http://{shown_host(host)}:{port}")
    print(f"MLflow UI for {Path(runs_dir).resolve()} (Ctrl-C stops it); the trials of "
          f"{search or 'the latest search'}, best FID-lite first:\n{url}", flush=True)
    return serve_until_stopped(command, url, open_browser)
