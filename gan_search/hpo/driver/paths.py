"""Where a search and its parts live, in one place (ray-free: the CLI asks before the
slow ray import):

- Tune's storage root: ``--storage`` (a URI such as s3://..., or a shared folder), else
  ``<runs-dir>/tune``; a search is the folder ``<root>/<name>``, its confirmation the Tune
  experiment ``confirm`` inside it;
- the search's local folder (the experiment folder when storage is local, else
  ``<runs-dir>/tune/<name>``): leaderboard.json, summary/, analysis/, delivered/,
  mlflow_pending/.
The Optuna study's storage URL: strategies/study.py.
"""

from __future__ import annotations

from pathlib import Path

from gan_search.core.config import SearchConfig

CONFIRM_DIR = "confirm"  # the confirmation's Tune experiment, inside the search's folder
DELIVERED_DIR = "delivered"  # the delivered generator, in the search's local folder
LEADERBOARD_FILE = "leaderboard.json"
ANALYSIS_DIR = "analysis"


def tune_root(runs_dir: str) -> Path:
    """Ray Tune's storage inside a runs directory (absolute, as Tune requires)."""
    return Path(runs_dir).expanduser().resolve() / "tune"


def storage_root(runs_dir: str, storage: str | None) -> str:
    """Tune's storage: --storage (s3://... kept as a URI, or a shared folder), else
    <runs-dir>/tune."""
    if storage and "://" in storage:
        return storage.rstrip("/")
    if storage:
        return str(Path(storage).expanduser().resolve())
    return str(tune_root(runs_dir))


def search_storage(config: SearchConfig) -> str:
    """The search's Tune storage root (``storage_root`` of its settings)."""
    return storage_root(config.runs_dir, config.storage)


def search_folder(config: SearchConfig) -> Path:
    """The search's local folder (``folder_of`` its name and storage)."""
    return folder_of(config.name, config.runs_dir, config.storage)


def folder_of(name: str, runs_dir: str, storage: str | None) -> Path:
    """A search's local folder: the experiment folder when storage is local (else a folder
    of the same name in the runs directory)."""
    root = storage_root(runs_dir, storage)
    if "://" in root:
        return tune_root(runs_dir) / name
    return Path(root) / name


def latest_search(runs_dir: str, space: str, storage: str | None = None) -> str | None:
    """The newest search of a space in the storage a search would use (for --resume
    without --name): <runs-dir>/tune, a --storage folder, or a --storage URI."""
    root = storage_root(runs_dir, storage)
    if "://" in root:
        import pyarrow.fs

        fs, base = pyarrow.fs.FileSystem.from_uri(root)
        found = [(info.mtime.timestamp() if info.mtime else 0.0, info.base_name)
                 for info in fs.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True))
                 if info.type == pyarrow.fs.FileType.Directory
                 and info.base_name.startswith(f"{space}-")]
    else:
        found = [(p.stat().st_mtime, p.name) for p in Path(root).glob(f"{space}-*") if p.is_dir()]
    return max(found)[1] if found else None
