"""Torch payloads (checkpoints, caches, statistics) written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import torch

from gan_search.core.files import write_atomic


def save_atomic(path: Path, payload: dict) -> None:
    """``torch.save`` of a payload, atomically (core/files.py: a temporary file, a rename)."""
    write_atomic(Path(path), lambda tmp: torch.save(payload, tmp))
