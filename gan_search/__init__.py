"""gan-search: Ray Tune + Optuna hyperparameter search for DCGANs, tracked in MLflow.

From Python (a notebook)::

    from gan_search import search, load_space
    outcome = search("digits", trials=8, runs_dir="runs")   # or search(load_space("my.yaml"))
    outcome.best.trial_id, outcome.delivered

Importing the package loads nothing heavy and changes no process-wide setting; a search
does when it starts (``app.search``).
"""

__version__ = "0.1.0"

__all__ = ["configure", "list_spaces", "load_space", "search"]


def __getattr__(name: str):  # the API, imported when first used
    if name in ("search", "configure"):
        from gan_search import app

        return getattr(app, name)
    if name in ("load_space", "list_spaces"):
        from gan_search.core import space

        return getattr(space, name)
    raise AttributeError(f"module 'gan_search' has no attribute {name!r}")
