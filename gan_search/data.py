"""Dataset sources, decoded once to a cached uint8 tensor (N, C, H, W) plus labels.

Sources are registered by name (``SOURCES``). Each turns its raw data into square
images of the asked size and channel count. The result is cached under the
user's cache directory, keyed by source, size, channels and options, so a search
decodes its images once and then shares the tensor with every trial.

Downloads (torchvision sources, ``cats``) happen only when such a source is
loaded, and fail offline with one clear message naming the folder where the files
can be put by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gan_search.errors import DataError
from gan_search.files import save_atomic

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CACHE_VERSION = 1  # bump when a source's decoding changes, to invalidate old caches


@dataclass(frozen=True)
class Dataset:
    """Decoded images (uint8, N x C x H x W) and, when the source has them, labels."""

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: tuple[str, ...]
    skipped: int = 0  # unreadable files left out (folder sources)


Decoded = tuple[torch.Tensor, "torch.Tensor | None", tuple[str, ...], int]


@dataclass(frozen=True)
class Source:
    """A registered dataset source: its loader and the options it accepts."""

    load: Callable[[int, int, Mapping[str, Any], Path], Decoded]
    options: tuple[str, ...]
    downloads: bool = False


def cache_dir() -> Path:
    """``$GAN_SEARCH_CACHE``, else ``$XDG_CACHE_HOME/gan_search``, else ``~/.cache/gan_search``."""
    if os.environ.get("GAN_SEARCH_CACHE"):
        return Path(os.environ["GAN_SEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan_search"


def load_dataset(source: str, size: int, channels: int,
                 options: Mapping[str, Any] | None = None) -> Dataset:
    """Load a dataset from the cache, or decode it from its source and cache it."""
    options = dict(options or {})
    if source not in SOURCES:
        raise DataError(f"unknown dataset source {source!r}; valid sources are: "
                        f"{', '.join(SOURCES)}")
    entry = SOURCES[source]
    unknown = [k for k in options if k not in entry.options]
    if unknown:
        raise DataError(f"data.options.{unknown[0]}: not an option of source {source!r}; valid "
                        f"options are: {', '.join(entry.options) or '(none)'}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    root = cache_dir() / "raw" / source
    path = cache_dir() / "datasets" / f"{dataset_key(source, size, channels, options)}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return Dataset(saved["images"], saved.get("labels"), tuple(saved["classes"]),
                       int(saved["skipped"]))
    images, labels, classes, skipped = entry.load(size, channels, options, root)
    data = Dataset(images.contiguous(), labels, classes, skipped)
    save_atomic(path, {"images": data.images, "labels": data.labels,
                        "classes": list(classes), "skipped": skipped})
    return data


# Sources whose own test split is the held-out reference; the others hold out a seeded share.
TEST_SPLIT_SOURCES = ("mnist", "fashion-mnist", "cifar10", "svhn")
# Held out from a source without a test split: enough real images for the scores' N (their
# noise falls with N), never more than a quarter, so that training keeps three quarters.
HOLDOUT_SHARE = 0.25
MIN_REFERENCE = 10  # the k-NN collapse measures need at least 2k = 10 samples


@dataclass(frozen=True)
class Splits:
    """The training images and the real reference the scores compare samples with, which
    the GAN never trains on (scoring against training images rewards memorisation)."""

    train: Dataset
    reference: Dataset
    train_key: str  # cache key of the training data
    reference_key: str  # cache key of the reference (keys the cached real statistics)
    description: str  # which reference, and how large


def load_splits(source: str, size: int, channels: int, options: Mapping[str, Any] | None,
                eval_samples: int) -> Splits:
    """Training data and held-out reference: the source's test split where it has one (and
    the search trains on its training split), else a seeded held-out share (see hold_out)."""
    options = dict(options or {})
    key = dataset_key(source, size, channels, options)
    if source in TEST_SPLIT_SOURCES and options.get("split", "train") == "train":
        test_options = {**options, "split": "test"}
        reference = load_dataset(source, size, channels, test_options)
        return Splits(load_dataset(source, size, channels, options), reference, key,
                      dataset_key(source, size, channels, test_options),
                      f"the {source} test split ({len(reference.images):,} images)")
    data = load_dataset(source, size, channels, options)
    train, reference = hold_out(data, eval_samples)
    count, total = len(reference.images), len(data.images)
    return Splits(train, reference, key, f"{key}-holdout{count}",
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


def dataset_key(source: str, size: int, channels: int, options: Mapping[str, Any]) -> str:
    described = dict(options)
    if source == "folder":
        described["fingerprint"] = _folder_fingerprint(Path(str(options.get("path", ""))))
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, described], sort_keys=True,
                                       default=str).encode()).hexdigest()[:12]
    return f"{source}-{size}px-c{channels}-{digest}"


# ---------------------------------------------------------------- conversions

def resize_array(images: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """uint8 array (N, H, W) or (N, H, W, C) or (N, C, H, W) -> uint8 tensor (N, C, S, S).

    Non-square images are centre-cropped to a square first; resizing uses
    antialiased bilinear interpolation.
    """
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    x = _to_channels(x, channels)
    height, width = x.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    x = x[:, :, top:top + side, left:left + side]
    if side == size:
        return x.to(torch.uint8).contiguous()
    out = []
    for chunk in x.split(2048):  # bounded memory for large datasets
        y = F.interpolate(chunk.float(), size=(size, size), mode="bilinear",
                          antialias=side > size, align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    # ITU-R 601 luma, the same weights PIL uses for "L"
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def pil_to_square(image: Image.Image, size: int, channels: int,
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A PIL image -> uint8 (C, S, S): optional crop box, centre square crop, resize."""
    image = image.convert("RGB" if channels == 3 else "L")
    if box is not None:
        image = image.crop(box)
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_images(path: str | Path, size: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    """Generated images to score: a folder of images, or a ``.npy`` / ``.pt`` uint8 array
    (N, H, W), (N, C, H, W) or (N, H, W, C). Images of another size or channel count
    are converted to (size, channels), and each conversion is reported as a note.
    """
    path = Path(path).expanduser()
    notes: list[str] = []
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise DataError(f"{path} has no images (looked for {', '.join(IMAGE_SUFFIXES)}, "
                            "recursively)")
        arrays, skipped, shapes = _decode_files(files, size, channels)
        if not arrays:
            raise DataError(f"{path}: none of its {len(files)} image files could be read")
        if skipped:
            notes.append(f"skipped {skipped} unreadable files")
        odd = sorted({f"{w}x{h} {mode}" for (w, h), mode in shapes
                      if (w, h) != (size, size) or (mode == "L") != (channels == 1)})
        if odd:
            notes.append(f"converted images of {', '.join(odd[:3])} to {size}x{size} with "
                         f"{channels} channel(s)")
        return torch.from_numpy(np.stack(arrays)), notes
    if path.suffix in (".npy", ".pt") and path.is_file():
        try:
            array = np.load(path) if path.suffix == ".npy" else \
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any reader failure is the user's file, said in one line
            raise DataError(f"{path}: could not read it as a {path.suffix} array: {err}") from None
        array = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        if array.dtype != np.uint8 or array.ndim not in (3, 4):
            raise DataError(f"{path}: expected a uint8 array (N, H, W), (N, C, H, W) or "
                            f"(N, H, W, C) with values 0..255, got {array.dtype} {array.shape}")
        shape = tuple(array.shape[1:])
        array = _channels_first(array, path, notes)
        if len(array) == 0:
            raise DataError(f"{path}: the array holds no images")
        images = resize_array(array, size, channels)
        if shape not in ((size, size), (channels, size, size), (size, size, channels)):
            notes.append(f"converted images of shape {shape} to "
                         f"{channels}x{size}x{size}")
        return images, notes
    raise DataError(f"{path} is neither a folder of images nor a .npy/.pt file")


def _channels_first(array: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """(N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1, 3, 4 -> (N, C, H, W) with C in
    1, 3 (RGBA loses its alpha channel, as PIL's RGB conversion of a PNG does)."""
    if array.ndim == 3:
        return array[:, None]
    if array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    elif array.shape[1] not in (1, 3, 4):
        raise DataError(f"{path}: images of shape {tuple(array.shape[1:])} have no channel axis "
                        "of 1 (grey), 3 (RGB) or 4 (RGBA); save (N, H, W), (N, C, H, W) or "
                        "(N, H, W, C) arrays")
    if array.shape[1] == 4:
        notes.append("dropped the alpha channel of RGBA images")
        array = array[:, :3]
    return array


# ---------------------------------------------------------------- sources

def _load_digits(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), upscaled."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
    images = resize_array(pixels, size, channels)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return images, labels, tuple(str(c) for c in range(10)), 0


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
    return _to_channels(images, channels), torch.as_tensor(labels), \
        tuple(str(c) for c in range(num_classes)), 0


def _load_folder(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    """Every image under a folder (recursive), centre-cropped and resized.
    Unreadable files are skipped and counted."""
    if "path" not in options:
        raise DataError("source folder needs options.path (the folder of images), "
                        "e.g. --data ~/my-cats")
    folder = Path(str(options["path"])).expanduser()
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist or is not a folder")
    files = _image_files(folder)
    if not files:
        raise DataError(f"image folder {folder} has no images (looked for "
                        f"{', '.join(IMAGE_SUFFIXES)}, recursively)")
    arrays, skipped, _ = _decode_files(files, size, channels)
    if not arrays:
        raise DataError(f"image folder {folder}: none of its {len(files)} image files could be "
                        "read; check that they are valid images")
    return torch.from_numpy(np.stack(arrays)), None, (), skipped


def _decode_files(files: list[Path], size: int, channels: int
                  ) -> tuple[list[np.ndarray], int, set[tuple[tuple[int, int], str]]]:
    """Each readable file as uint8 (C, S, S); the count of unreadable ones; the original
    (size, mode) pairs seen."""
    arrays, skipped, shapes = [], 0, set()
    for file in files:
        try:
            with Image.open(file) as image:
                shapes.add((image.size, image.mode))
                arrays.append(pil_to_square(image, size, channels))
        except (OSError, ValueError, Image.DecompressionBombError):
            skipped += 1
    return arrays, skipped, shapes


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _folder_fingerprint(folder: Path) -> str:
    if not folder.is_dir():
        return "missing"
    parts = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in _image_files(folder)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _download_error(source: str, root: Path, err: BaseException) -> DataError:
    reason = " ".join(str(err).split())  # torchvision's messages span several lines
    return DataError(f"could not get dataset {source!r} into {root}: {reason}. Check the "
                     "internet connection and retry, or put the files there by hand "
                     "(see README, 'Datasets')")


def _torchvision(source: str, factory: Callable[..., Any], root: Path, **kwargs: Any) -> Any:
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


def _load_mnist_like(source: str, dataset_cls_name: str) -> Callable[..., Decoded]:
    def load(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
        import torchvision.datasets as tvd

        factory = getattr(tvd, dataset_cls_name)
        parts, classes = [], ()
        for split in _split_option(source, options, ("train", "test")):
            ds = _torchvision(source, factory, root, train=split == "train")
            parts.append((ds.data.numpy(), ds.targets.numpy()))
            classes = tuple(str(c) for c in ds.classes)
        return _array_source(source, size, channels, parts, classes,
                             _class_filter(source, options, classes))
    return load


def _load_cifar10(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    import torchvision.datasets as tvd

    parts, classes = [], ()
    for split in _split_option("cifar10", options, ("train", "test")):
        ds = _torchvision("cifar10", tvd.CIFAR10, root, train=split == "train")
        parts.append((ds.data, ds.targets))  # data: (N, 32, 32, 3) uint8
        classes = tuple(ds.classes)
    return _array_source("cifar10", size, channels, parts, classes,
                         _class_filter("cifar10", options, classes))


def _load_svhn(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    import torchvision.datasets as tvd

    parts = []
    for split in _split_option("svhn", options, ("train", "test", "extra")):
        ds = _torchvision("svhn", tvd.SVHN, root, split=split)
        parts.append((ds.data, ds.labels))  # data: (N, 3, 32, 32) uint8
    classes = tuple(str(c) for c in range(10))
    return _array_source("svhn", size, channels, parts, classes,
                         _class_filter("svhn", options, classes))


def _load_cats(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    """Oxford-IIIT Pet cats, cropped to the annotated head box where one exists, else to
    the bounding box of the segmentation foreground. Both official splits are used."""
    import torchvision.datasets as tvd

    for split in ("trainval", "test"):
        _torchvision("cats", tvd.OxfordIIITPet, root, split=split)
    return decode_pet_cats(root / "oxford-iiit-pet", size, channels)


def decode_pet_cats(base: Path, size: int, channels: int) -> Decoded:
    """Decode the cat images of an Oxford-IIIT Pet folder (``images/``, ``annotations/``)."""
    ids = []
    for split in ("trainval", "test"):
        listing = base / "annotations" / f"{split}.txt"
        if listing.is_file():
            for line in listing.read_text().splitlines():
                fields = line.split()
                # "image_id class_id species breed_id"; species 1 = cat, 2 = dog
                if len(fields) == 4 and fields[2] == "1":
                    ids.append(fields[0])
    arrays, skipped = [], 0
    for image_id in sorted(set(ids)):
        try:
            with Image.open(base / "images" / f"{image_id}.jpg") as image:
                box = _pet_head_box(base, image_id) or _pet_foreground_box(base, image_id)
                arrays.append(pil_to_square(image, size, channels, box))
        except (OSError, ValueError, ET.ParseError):
            skipped += 1
    if not arrays:
        raise DataError(f"no cat images found in {base}; expected annotations/trainval.txt "
                        "and images/*.jpg of the Oxford-IIIT Pet dataset")
    labels = torch.zeros(len(arrays), dtype=torch.int64)  # binary label: 0 = cat
    return torch.from_numpy(np.stack(arrays)), labels, ("cat",), skipped


def _pet_head_box(base: Path, image_id: str) -> tuple[int, int, int, int] | None:
    path = base / "annotations" / "xmls" / f"{image_id}.xml"
    if not path.is_file():
        return None
    box = ET.parse(path).find(".//object/bndbox")
    if box is None:
        return None
    xmin, ymin, xmax, ymax = (int(float(box.findtext(k, "0"))) for k in ("xmin", "ymin", "xmax", "ymax"))
    return _square_box(xmin, ymin, xmax, ymax)


def _pet_foreground_box(base: Path, image_id: str) -> tuple[int, int, int, int] | None:
    path = base / "annotations" / "trimaps" / f"{image_id}.png"
    if not path.is_file():
        return None
    with Image.open(path) as trimap:
        mask = np.asarray(trimap) == 1  # trimap: 1 pet, 2 background, 3 border
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return None
    return _square_box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _square_box(xmin: int, ymin: int, xmax: int, ymax: int) -> tuple[int, int, int, int]:
    """Grow a box to a square around its centre (PIL pads outside the image with black)."""
    side = max(xmax - xmin, ymax - ymin)
    cx, cy = (xmin + xmax) // 2, (ymin + ymax) // 2
    return cx - side // 2, cy - side // 2, cx - side // 2 + side, cy - side // 2 + side


SOURCES: dict[str, Source] = {
    "digits": Source(_load_digits, ()),
    "fake": Source(_load_fake, ("n", "classes", "seed")),
    "folder": Source(_load_folder, ("path",)),
    "mnist": Source(_load_mnist_like("mnist", "MNIST"), ("split", "classes"), downloads=True),
    "fashion-mnist": Source(_load_mnist_like("fashion-mnist", "FashionMNIST"), ("split", "classes"),
                            downloads=True),
    "cifar10": Source(_load_cifar10, ("split", "classes"), downloads=True),
    "svhn": Source(_load_svhn, ("split", "classes"), downloads=True),
    "cats": Source(_load_cats, (), downloads=True),
}
