"""The application: a search recorded in MLflow, as ``gan-search run`` does it, callable from
Python (tests, benchmarks, notebooks). The one place, below the CLI, where the search and the
tracking layers meet: the search runs (``search/run.py``), the tracker records it
(``tracking/``), and neither imports the other's layer upwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from gan_search.core.config import SearchConfig
from gan_search.core.results import SearchOutcome


def run_search(config: SearchConfig, resume: bool = False, callbacks: list | None = None,
               log: Callable[[str], None] = print, tracking_uri: str | None = None,
               track: bool = True, live: bool = False) -> SearchOutcome:
    """Run (or resume) a search, confirm its winners, say what mattered; record it all in
    MLflow (``track``: the embedded store of ``config.runs_dir``, or ``tracking_uri``) and
    return the outcome. A tracking server that cannot be reached fails before any trial."""
    from gan_search import tracking
    from gan_search.search import run

    if track:
        tracking.check_store(config.runs_dir, tracking_uri)

    def tracker(params: dict[str, Any], shared: Any, folder: Path) -> Any:
        started = tracking.MlflowTracker(
            config.runs_dir, tracking_uri, config.spec.name, config.name, params, shared.base,
            config.spec.path, folder, log=log)
        started.start()
        return started

    return run.run_search(config, resume=resume, callbacks=callbacks, log=log, live=live,
                          tracker=tracker if track else None)
