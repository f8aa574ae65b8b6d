"""Everything MLflow (the only package that imports mlflow): where the records live and
reading them back (store.py), and the Tune callback that writes a search (callback.py, over
ledger.py, writer.py and recorder.py)."""

from gan_search.tracking.callback import MlflowTracker
from gan_search.tracking.store import (check_store, download_generator, find_run, find_search,
                                       record_on_search, require_store, runs_url, search_url,
                                       store_paths, ui_command, use_short_timeouts)
from gan_search.tracking.tags import (CONFIRM_OF_TAG, MESSAGE_TAG, NODE_TAG, ROLE_TAG,
                                      SEARCH_TAG, STATUS_TAG, TRIAL_TAG)

__all__ = ["CONFIRM_OF_TAG", "MESSAGE_TAG", "NODE_TAG", "ROLE_TAG", "SEARCH_TAG", "STATUS_TAG",
           "TRIAL_TAG", "MlflowTracker", "check_store", "download_generator", "find_run",
           "find_search", "record_on_search", "require_store", "runs_url", "search_url",
           "store_paths", "ui_command", "use_short_timeouts"]
