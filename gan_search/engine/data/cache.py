"""Datasets decoded once: a source's images at one size and channel count, cached as a
uint8 tensor (N, C, H, W) with labels under the user's cache directory, keyed by source,
size, channels and options (and, for a folder, its fingerprint). A search decodes its
images once and then shares the tensor with every trial.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from gan_search.core.errors import DataError
from gan_search.engine.atomic import save_atomic
from gan_search.engine.data.sources import source_entry

CACHE_VERSION = 1  # bump when a source's decoding changes, to invalidate old caches


@dataclass(frozen=True)
class Dataset:
    """Decoded images (uint8, N x C x H x W) and, when the source has them, labels."""

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: tuple[str, ...]
    skipped: int = 0  # unreadable files left out (folder sources)


def cache_dir() -> Path:
    """``$GAN_SEARCH_CACHE``, else ``$XDG_CACHE_HOME/gan_search``, else ``~/.cache/gan_search``."""
    if os.environ.get("GAN_SEARCH_CACHE"):
        return Path(os.environ["GAN_SEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan_search"


def dataset_key(source: str, size: int, channels: int, options: Mapping[str, Any]) -> str:
    """The cache key: what the images are (the source says how to fingerprint its data)."""
    described = dict(options)
    fingerprint = source_entry(source).fingerprint
    if fingerprint is not None:
        described["fingerprint"] = fingerprint(options)
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, described], sort_keys=True,
                                       default=str).encode()).hexdigest()[:12]
    return f"{source}-{size}px-c{channels}-{digest}"


def load_dataset(source: str, size: int, channels: int,
                 options: Mapping[str, Any] | None = None) -> Dataset:
    """Load a dataset from the cache, or decode it from its source and cache it."""
    options = dict(options or {})
    entry = source_entry(source)
    unknown = [k for k in options if k not in entry.options]
    if unknown:
        raise DataError(f"data.options.{unknown[0]}: not an option of source {source!r}; valid "
                        f"options are: {', '.join(entry.options) or '(none)'}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    path = cache_dir() / "datasets" / f"{dataset_key(source, size, channels, options)}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return Dataset(saved["images"], saved.get("labels"), tuple(saved["classes"]),
                       int(saved["skipped"]))
    images, labels, classes, skipped = entry.load(size, channels, options,
                                                  cache_dir() / "raw" / source)
    data = Dataset(images.contiguous(), labels, classes, skipped)
    save_atomic(path, {"images": data.images, "labels": data.labels,
                       "classes": list(classes), "skipped": skipped})
    return data
