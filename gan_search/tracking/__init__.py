"""Everything MLflow (the only package that imports mlflow): where the records live and
reading them back (store.py), and the Tune callback that writes a search (tracker.py)."""

from gan_search.tracking.store import (MESSAGE_TAG, ROLE_TAG, SEARCH_TAG, STATUS_TAG, TRIAL_TAG,
                                       check_store, download_generator, find_run, find_search,
                                       require_store, runs_url, search_url, store_paths,
                                       ui_command,
                                       use_short_timeouts)
from gan_search.tracking.tracker import RESTORED, MlflowTracker

__all__ = ["MESSAGE_TAG", "ROLE_TAG", "RESTORED", "SEARCH_TAG", "STATUS_TAG", "TRIAL_TAG",
           "MlflowTracker", "check_store", "download_generator", "find_run", "find_search",
           "require_store", "runs_url", "search_url", "store_paths", "ui_command", "use_short_timeouts"]
