"""Where a search's Optuna study lives: a real Optuna storage, read with Optuna's own tools.

Every search keeps its study in an Optuna RDB storage, one study per search, named after
the search: by default the SQLite file ``optuna.db`` in the runs directory (beside MLflow's
``mlflow.db``; on a cluster that is the head's runs directory, where the driver runs), or
the storage ``--optuna-storage`` names (any Optuna RDB URL, e.g. ``postgresql://...``).
Searches that run at once into one storage keep separate studies (SQLite takes their
writes in turns). A reader opens it as any Optuna study::

    optuna.load_study(study_name="digits-20261202-101500",
                      storage="sqlite:///gan_search_runs/optuna.db")
    optuna-dashboard sqlite:///gan_search_runs/optuna.db

What each trial of the study is (user attributes): ``role`` (``baseline``, ``search`` or,
under PBT, ``member``), ``tune_trial`` (the Tune trial id, as in the leaderboard and the
MLflow run names), ``status`` (how it ended: finished, stopped, collapsed, diverged,
error); its state says what Optuna should make of it (searcher.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

from gan_search.core.config import SearchConfig
from gan_search.core.errors import ConfigError

FILE = "optuna.db"
SQLITE_TIMEOUT_S = 60  # a writer waits this long for another search's write to end
ROLE_ATTR = "role"
TUNE_TRIAL_ATTR = "tune_trial"
STATUS_ATTR = "status"


def storage_url(runs_dir: str, given: str | None = None) -> str:
    """The study storage's URL: ``given`` (--optuna-storage), else the runs directory's
    SQLite file."""
    if given:
        return given
    return f"sqlite:///{Path(runs_dir).expanduser().resolve() / FILE}"


def url_of(config: SearchConfig) -> str:
    """The storage of a search's study."""
    return storage_url(config.runs_dir, config.optuna_storage)


def check_url(url: str | None) -> None:
    """--optuna-storage must be an RDB URL Optuna can open (checked before anything runs)."""
    if url is None:
        return
    if "://" not in url or url.startswith(("s3://", "gs://", "http://", "https://", "file://")):
        raise ConfigError(f"--optuna-storage {url}: not a database URL; give one Optuna's "
                          "RDB storage opens, e.g. sqlite:////abs/path/optuna.db or "
                          "postgresql://user@host/db (default: optuna.db in --runs-dir)")


@contextlib.contextmanager
def _first_open_lock(url: str) -> Iterator[None]:
    """Two searches that open a new SQLite file at once would both create its tables: the
    first one does it under a lock file beside it."""
    if not url.startswith("sqlite:///"):
        yield
        return
    path = Path(url[len("sqlite:///"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at ``url`` (created if new)."""
    import optuna

    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    with _first_open_lock(url):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except Exception as err:  # any failure to open it is the same one-line error
            reason = " ".join(str(err).split())[:200]
            raise ConfigError(f"Optuna storage {url}: cannot open it ({reason}); fix "
                              "--optuna-storage or leave it out") from None


def names(url: str) -> list[str]:
    """The studies in the storage (none where its SQLite file does not exist yet)."""
    import optuna

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return []
    return optuna.get_all_study_names(open_storage(url))


def exists(url: str, name: str) -> bool:
    """Whether the storage holds a study of that name (a new search needs a new one)."""
    return name in names(url)


def create(url: str, name: str, sampler: Any, directions: list[str], about: dict[str, Any],
           metric_names: list[str]) -> tuple[Any, Any, bool]:
    """(study, its storage, new): the stored study of search ``name``, created (described
    by ``about`` and the objectives' names) if the storage has none yet, else loaded."""
    import optuna

    storage = open_storage(url)
    found = optuna.create_study(storage=storage, sampler=sampler, study_name=name,
                                directions=directions, load_if_exists=True,
                                pruner=optuna.pruners.NopPruner())
    new = not found.trials
    if new:
        for key, value in {"sampler": type(sampler).__name__, **about}.items():
            found.set_user_attr(key, value)
        if metric_names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                found.set_metric_names(list(metric_names))
    return found, storage, new


def handle(study: Any, storage: Any, number: int) -> Any:
    """The ``optuna.trial.Trial`` of the study's trial ``number`` (to report to it or set
    its attributes from another process or after a resume)."""
    import optuna

    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.trial.Trial(study,
                              storage.get_trial_id_from_study_id_trial_number(study_id, number))


def finished(study: Any, number: int) -> bool:
    """Whether the study's trial ``number`` ended already (told before a driver was killed)."""
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number).state \
        .is_finished()


def finite(value: Any) -> bool:
    """A score Optuna can be told (a number, not NaN or infinite)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def load(url: str, name: str) -> Any:
    """The study of search ``name``, as ``optuna.load_study`` gives it to anyone."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise ConfigError(f"no Optuna study {name!r} in {url}") from None
