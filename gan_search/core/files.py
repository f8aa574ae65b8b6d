"""Files written whole or not at all: a temporary file in the same folder, then a rename,
so a crash or a full disk never leaves half a cache, checkpoint or leaderboard behind.
A leaf module (standard library); the engine's ``save_atomic`` writes torch payloads through it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _replace(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # the suffix stays last: writers that pick the format by it (PIL) see the real one
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write: Any) -> None:
    """``write(tmp_path)`` to a temporary file that then replaces ``path``."""
    _replace(Path(path), write)


def write_text_atomic(path: Path, text: str) -> None:
    """A text file (JSON, a leaderboard), atomically."""
    _replace(Path(path), lambda tmp: tmp.write_text(text))
