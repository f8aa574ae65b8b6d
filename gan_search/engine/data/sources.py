"""The dataset sources a space can name, as a small registry whose entries say what they
are: how to load (decode) them, which options they take, whether they download, whether
they have a test split (the held-out reference, see splits.py) and how to fingerprint their
data for the cache key (a folder's files change; a package's bundled data does not).

Downloads (torchvision sources, ``cats``) happen only when such a source is loaded, and
fail offline with one clear message naming the folder where the files can be put by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from gan_search.core.errors import DataError
from gan_search.engine.data.images import (Decoded, folder_fingerprint, read_folder,
                                           resize_array, to_channels)
from gan_search.engine.data.pets import load_cats

Loader = Callable[[int, int, Mapping[str, Any], Path], Decoded]  # size, channels, options, raw dir


@dataclass(frozen=True)
class Source:
    """A registered dataset source."""

    load: Loader
    options: tuple[str, ...]
    downloads: bool = False
    test_split: bool = False  # its own test split is the held-out reference
    fingerprint: Callable[[Mapping[str, Any]], str] | None = None  # None: fixed data


def source_entry(source: str) -> Source:
    """The registry entry of a source, or one clear error listing the valid ones."""
    if source not in SOURCES:
        raise DataError(f"unknown dataset source {source!r}; valid sources are: "
                        f"{', '.join(SOURCES)}")
    return SOURCES[source]


def _load_digits(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), upscaled."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return resize_array(pixels, size, channels), labels, tuple(str(c) for c in range(10)), 0


def _load_fake(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    """Deterministic synthetic images: each class is a bright blob of its own colour at
    its own place on a dark, lightly noisy background. Labels are the classes."""
    count = int(options.get("n", 1000))
    num_classes = int(options.get("classes", 10))
    if count < 1 or num_classes < 1:
        raise DataError(f"fake source: n and classes must be >= 1, got n={count}, "
                        f"classes={num_classes}")
    rng = np.random.default_rng(int(options.get("seed", 0)))
    labels = np.arange(count) % num_classes
    angle = 2 * np.pi * labels / num_classes
    centre = 0.5 + 0.28 * np.stack([np.cos(angle), np.sin(angle)], 1)  # (N, 2) in [0, 1]
    centre = centre + rng.normal(0, 0.03, centre.shape)
    grid = (np.arange(size) + 0.5) / size
    dist2 = (grid[None, None, :] - centre[:, 0, None, None]) ** 2 + \
            (grid[None, :, None] - centre[:, 1, None, None]) ** 2
    radius = rng.uniform(0.10, 0.16, count)[:, None, None]
    blob = np.exp(-dist2 / (2 * radius ** 2))  # (N, S, S)
    hue = labels / num_classes
    colour = np.stack([0.5 + 0.5 * np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)], 1)
    pixels = blob[:, None] * colour[:, :, None, None] * 230 + 15
    pixels = pixels + rng.normal(0, 6, pixels.shape)
    images = torch.from_numpy(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    return to_channels(images, channels), torch.as_tensor(labels), \
        tuple(str(c) for c in range(num_classes)), 0


def _folder(options: Mapping[str, Any]) -> Path:
    return Path(str(options.get("path", ""))).expanduser()


def _load_folder(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    """Every image under a folder (recursive), centre-cropped and resized.
    Unreadable files are skipped and counted."""
    if "path" not in options:
        raise DataError("source folder needs options.path (the folder of images), "
                        "e.g. --data ~/my-cats")
    folder = _folder(options)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist or is not a folder")
    images, skipped, _ = read_folder(folder, size, channels)
    return images, None, (), skipped


def _download_error(source: str, root: Path, err: BaseException) -> DataError:
    reason = " ".join(str(err).split())  # torchvision's messages span several lines
    return DataError(f"could not get dataset {source!r} into {root}: {reason}. Check the "
                     "internet connection and retry, or put the files there by hand "
                     "(see README, 'Datasets')")


def torchvision_dataset(source: str, factory: Callable[..., Any], root: Path,
                        **kwargs: Any) -> Any:
    """Open a torchvision dataset, downloading on first use; clear error offline."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        return factory(str(root), download=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
        raise _download_error(source, root, err) from None


def _split_option(source: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> list[str]:
    split = options.get("split", allowed[0])
    splits = list(allowed) if split == "all" else [split]
    if any(s not in allowed for s in splits):
        raise DataError(f"source {source}: data.options.split={split!r}; valid: "
                        f"{', '.join(allowed)} or all")
    return splits


def _array_source(source: str, size: int, channels: int, parts: list[tuple[Any, Any]],
                  classes: tuple[str, ...], keep: list[int] | None = None) -> Decoded:
    """Join (images, labels) arrays from torchvision splits, filter classes, resize."""
    images = np.concatenate([np.asarray(images) for images, _ in parts])
    labels = np.concatenate([np.asarray(labels) for _, labels in parts]).astype(np.int64)
    if keep is not None:
        mask = np.isin(labels, keep)
        images, labels = images[mask], labels[mask]
        # relabel to 0..len(keep)-1 so that class counts match the kept classes
        remap = {old: new for new, old in enumerate(keep)}
        labels = np.array([remap[int(v)] for v in labels], dtype=np.int64)
        classes = tuple(classes[k] for k in keep)
    if len(images) == 0:
        raise DataError(f"source {source}: no images left after filtering")
    return resize_array(images, size, channels), torch.as_tensor(labels), classes, 0


def _class_filter(source: str, options: Mapping[str, Any], classes: tuple[str, ...]) -> list[int] | None:
    wanted = options.get("classes")
    if wanted is None:
        return None
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    keep = []
    for item in wanted:
        if isinstance(item, int) and 0 <= item < len(classes):
            keep.append(item)
        elif isinstance(item, str) and item in classes:
            keep.append(classes.index(item))
        else:
            raise DataError(f"source {source}: data.options.classes has {item!r}; valid classes: "
                            f"{', '.join(classes)} (or their indices)")
    return sorted(set(keep))


@dataclass(frozen=True)
class _Torchvision:
    """A labelled torchvision dataset: one loop for all of them (open each asked split,
    take its arrays, join, filter classes, resize)."""

    source: str
    dataset: str  # the torchvision.datasets class
    splits: tuple[str, ...]  # the first is the default
    by_name: bool = False  # opened with split="..." (SVHN) instead of train=True/False
    labels: str = "targets"  # the attribute holding the labels

    def __call__(self, size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
        import torchvision.datasets as tvd

        parts, classes = [], ()
        for split in _split_option(self.source, options, self.splits):
            kwargs = {"split": split} if self.by_name else {"train": split == "train"}
            ds = torchvision_dataset(self.source, getattr(tvd, self.dataset), root, **kwargs)
            images, labels = ds.data, getattr(ds, self.labels)
            parts.append((np.asarray(images), np.asarray(labels)))
            # SVHN has no class names: its labels are the digits
            classes = tuple(str(c) for c in getattr(ds, "classes", range(10)))
        return _array_source(self.source, size, channels, parts, classes,
                             _class_filter(self.source, options, classes))


_LABELLED = ("split", "classes")
SOURCES: dict[str, Source] = {
    "digits": Source(_load_digits, ()),
    "fake": Source(_load_fake, ("n", "classes", "seed")),
    "folder": Source(_load_folder, ("path",),
                     fingerprint=lambda options: folder_fingerprint(_folder(options))),
    "mnist": Source(_Torchvision("mnist", "MNIST", ("train", "test")), _LABELLED,
                    downloads=True, test_split=True),
    "fashion-mnist": Source(_Torchvision("fashion-mnist", "FashionMNIST", ("train", "test")),
                            _LABELLED, downloads=True, test_split=True),
    "cifar10": Source(_Torchvision("cifar10", "CIFAR10", ("train", "test")), _LABELLED,
                      downloads=True, test_split=True),
    "svhn": Source(_Torchvision("svhn", "SVHN", ("train", "test", "extra"), by_name=True,
                                labels="labels"), _LABELLED, downloads=True, test_split=True),
    "cats": Source(load_cats, (), downloads=True),
}
