"""Where searches live, and what a search may be called; ray-free, so the CLI checks
--name and --resume before the slow ray import."""

from __future__ import annotations

from pathlib import Path

from gan_search.core.errors import ConfigError
from gan_search.core.space import PLAIN_NAME


def check_name(name: str) -> str:
    """A plain search name, or one clear error: it becomes a folder (local or on shared
    storage), an MLflow run name and a filter value, so never a path or a quote."""
    if not PLAIN_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"--name {name!r}: a search name must be a plain name of letters, "
                          "digits, '.', '_' and '-' (starting with a letter or digit, at most "
                          "100, no '..'), e.g. --name cats-wide-lr")
    return name


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


STORAGE_SCHEMES = ("s3", "gs", "gcs", "abfs", "hdfs", "file")


def check_storage(storage: str | None) -> None:
    """--storage: a URI of a filesystem Ray Tune can use, or a folder (not a file)."""
    if not storage:
        return
    scheme, sep, rest = storage.partition("://")
    if sep:
        if scheme not in STORAGE_SCHEMES or not rest.strip("/"):
            raise ConfigError(f"--storage {storage}: expected s3://bucket/path (or gs://, abfs://, "
                              "hdfs://, file://) or a shared folder")
    elif Path(storage).expanduser().exists() and not Path(storage).expanduser().is_dir():
        raise ConfigError(f"--storage {storage}: exists and is not a folder")


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
