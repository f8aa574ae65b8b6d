"""Training images and the held-out reference the scores compare samples with.

The reference is real images the GAN never trains on (scoring against training images
rewards memorisation): the source's own test split where its registry entry says it has
one, else a seeded held-out share, the same on every machine and in every trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from gan_search.core.errors import DataError
from gan_search.engine.data.cache import Dataset, dataset_key, load_dataset
from gan_search.engine.data.sources import source_entry

# Held out from a source without a test split: enough real images for the scores' N (their
# noise falls with N), never more than a quarter, so that training keeps three quarters.
HOLDOUT_SHARE = 0.25
MIN_REFERENCE = 10  # the k-NN collapse measures need at least 2k = 10 samples


@dataclass(frozen=True)
class Splits:
    """The training images and the real reference the scores compare samples with."""

    train: Dataset
    reference: Dataset
    train_key: str  # cache key of the training data
    reference_key: str  # cache key of the reference (keys the cached real statistics)
    description: str  # which reference, and how large


def load_splits(source: str, size: int, channels: int, options: Mapping[str, Any] | None,
                eval_samples: int) -> Splits:
    """Training data and held-out reference: the source's test split where it has one (and
    the search trains on its training split), else a seeded held-out share (hold_out)."""
    options = dict(options or {})
    key = dataset_key(source, size, channels, options)
    if source_entry(source).test_split and options.get("split", "train") == "train":
        test_options = {**options, "split": "test"}
        reference = load_dataset(source, size, channels, test_options)
        return Splits(load_dataset(source, size, channels, options), reference, key,
                      dataset_key(source, size, channels, test_options),
                      f"the {source} test split ({len(reference.images):,} images)")
    data = load_dataset(source, size, channels, options)
    train, reference = hold_out(data, eval_samples)
    count, total = len(reference.images), len(data.images)
    # the training part's own key: the whole set's would hand a search the classifier an
    # evaluation of the whole set cached (trained on the held-out reference too)
    return Splits(train, reference, f"{key}-without-holdout{count}", f"{key}-holdout{count}",
                  f"a seeded held-out {100 * count / total:.0f}% of {source} ({count:,} of "
                  f"{total:,} images)")


def hold_out(data: Dataset, eval_samples: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(training part, reference part): min(eval_samples, 25%) images chosen by a seeded
    permutation, the same on every machine and in every trial."""
    total = len(data.images)
    count = min(eval_samples, int(total * HOLDOUT_SHARE))
    if count < MIN_REFERENCE:
        raise DataError(f"{total} images are too few to hold out a reference of "
                        f"{MIN_REFERENCE} real images for the scores; use at least "
                        f"{math.ceil(MIN_REFERENCE / HOLDOUT_SHARE)} images")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return _subset(data, order[count:].sort().values), _subset(data, order[:count].sort().values)


def _subset(data: Dataset, index: torch.Tensor) -> Dataset:
    labels = None if data.labels is None else data.labels[index]
    return Dataset(data.images[index], labels, data.classes, data.skipped)
