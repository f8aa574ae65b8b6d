"""Folders the command line writes to: checked before anything is written, one clear line
when one cannot be used. Standard library only."""

from __future__ import annotations

import os
from pathlib import Path

from gan_search.core.errors import ConfigError


def make_folder(path: Path, flag: str) -> None:
    """Create an output folder, or one clear line saying why it cannot be."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: exists and is not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gan-search-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot write there ({err.strerror or err}); give a "
                          "folder you can write to") from None


def check_runs_dir(runs_dir: str) -> None:
    """--runs-dir must be a folder or not exist yet (it is made when the search starts)."""
    path = Path(runs_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--runs-dir {runs_dir}: exists and is not a folder; give a folder "
                          "(it is created if missing)")
