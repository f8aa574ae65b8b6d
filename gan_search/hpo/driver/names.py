"""What a search may be called and where it may be stored (--name, --storage): checked by
the CLI before the slow ray import, so ray-free. Where searches live: paths.py."""

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
