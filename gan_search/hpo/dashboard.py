"""optuna-dashboard on the searches' stored studies (``gan-search ui --optuna``): the
dashboard of Optuna's own project (history, importances, parallel coordinates, each
trial's intermediate values, live while a search runs) served on the study storage, bound
to 127.0.0.1 unless asked otherwise, with the link to one search's study printed (and
opened where a browser is at hand). By hand it is one line::

    optuna-dashboard sqlite:///$PWD/gan_search_runs/optuna.db
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from gan_search.core.errors import ConfigError
from gan_search.core.serving import check_listen, serve_until_stopped, shown_host
from gan_search.hpo.strategies import study

DEFAULT_PORT = 8080  # optuna-dashboard's own


def dashboard_script() -> str:
    """The optuna-dashboard command of this environment (a dependency of gan-search)."""
    beside = Path(sys.executable).parent / "optuna-dashboard"
    found = str(beside) if beside.is_file() else shutil.which("optuna-dashboard")
    if found is None:
        raise ConfigError("optuna-dashboard is not installed in this environment; install it "
                          "with: pip install optuna-dashboard")
    return found


def study_name(url: str, search: str | None) -> str:
    """The study of ``search``, else of the newest search in the storage."""
    known = study.names(url)
    if search is not None:
        if search not in known:
            raise ConfigError(f"--search {search}: no Optuna study of that name in {url}; "
                              "leave --search out for the latest search")
        return search
    if not known:
        raise ConfigError(f"no Optuna study in {url} yet: run a search first (gan-search run)")
    storage = study.open_storage(url)
    return max(known, key=storage.get_study_id_from_name)  # ids grow with each new study


def study_link(url: str, name: str, base: str) -> str:
    """The dashboard page of one study."""
    return f"{base}/dashboard/studies/{study.open_storage(url).get_study_id_from_name(name)}"


def serve(url: str, host: str, port: int, search: str | None, open_browser: bool) -> int:
    """Serve optuna-dashboard on the storage until Ctrl-C; its exit code."""
    name = study_name(url, search)
    script = dashboard_script()
    check_listen(host, port)
    link = study_link(url, name, f"http://{shown_host(host)}:{port}")
    print(f"optuna-dashboard on {url} (Ctrl-C stops it); the Optuna study of search "
          f"{name}:\n{link}", flush=True)
    return serve_until_stopped([script, url, "--host", host, "--port", str(port)], link,
                               open_browser)
