"""Where searches live in a runs directory; ray-free, so the CLI can check --resume
before the slow ray import."""

from __future__ import annotations

from pathlib import Path


def tune_root(runs_dir: str) -> Path:
    """Ray Tune's storage inside a runs directory (absolute, as Tune requires)."""
    return Path(runs_dir).expanduser().resolve() / "tune"


def latest_search(runs_dir: str, space: str) -> str | None:
    """The newest search of a space in a runs directory (for --resume without --name)."""
    found = sorted((p for p in tune_root(runs_dir).glob(f"{space}-*") if p.is_dir()),
                   key=lambda p: p.stat().st_mtime)
    return found[-1].name if found else None
