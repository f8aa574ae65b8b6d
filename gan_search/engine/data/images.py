"""Image conversions and the one file-decoding loop: arrays in any common layout, PIL
images and folders of image files, all to square uint8 tensors (N, C, S, S) of one size
and channel count. ``read_images`` reads generated images for ``gan-search score``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gan_search.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
Shape = tuple[tuple[int, int], str]  # (width, height), PIL mode
# what a source's loader returns: images (N, C, S, S), labels or None, class names, skipped
Decoded = tuple[torch.Tensor, "torch.Tensor | None", tuple[str, ...], int]


def centre_square(width: int, height: int) -> tuple[int, int, int]:
    """(left, top, side) of the largest centred square of a width x height image."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def channels_first(array: np.ndarray, where: object = "array",
                   notes: list[str] | None = None) -> np.ndarray:
    """(N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1, 3, 4 -> (N, C, H, W) with C in
    1, 3 (RGBA loses its alpha channel, as PIL's RGB conversion of a PNG does)."""
    if array.ndim == 3:
        return array[:, None]
    if array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    elif array.shape[1] not in (1, 3, 4):
        raise DataError(f"{where}: images of shape {tuple(array.shape[1:])} have no channel axis "
                        "of 1 (grey), 3 (RGB) or 4 (RGBA); save (N, H, W), (N, C, H, W) or "
                        "(N, H, W, C) arrays")
    if array.shape[1] == 4:
        if notes is not None:
            notes.append("dropped the alpha channel of RGBA images")
        array = array[:, :3]
    return array


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in 1, 3 -> the asked channel count (grey by ITU-R 601 luma,
    the weights PIL uses for "L")."""
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def resize_array(images: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """uint8 array (N, H, W), (N, H, W, C) or (N, C, H, W) -> uint8 tensor (N, C, S, S).

    Non-square images are centre-cropped to a square first; resizing uses antialiased
    bilinear interpolation.
    """
    x = to_channels(torch.from_numpy(np.ascontiguousarray(channels_first(images))), channels)
    left, top, side = centre_square(x.shape[-1], x.shape[-2])
    x = x[:, :, top:top + side, left:left + side]
    if side == size:
        return x.to(torch.uint8).contiguous()
    out = []
    for chunk in x.split(2048):  # bounded memory for large datasets
        y = F.interpolate(chunk.float(), size=(size, size), mode="bilinear",
                          antialias=side > size, align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def pil_to_square(image: Image.Image, size: int, channels: int,
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A PIL image -> uint8 (C, S, S): optional crop box, centre square crop, resize."""
    image = image.convert("RGB" if channels == 3 else "L")
    if box is not None:
        image = image.crop(box)
    left, top, side = centre_square(*image.size)
    image = image.crop((left, top, left + side, top + side))
    image = image.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def image_files(folder: Path) -> list[Path]:
    """Every image file under a folder, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_fingerprint(folder: Path) -> str:
    """Changes when any image under the folder is added, removed or rewritten."""
    if not folder.is_dir():
        return "missing"
    parts = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in image_files(folder)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


Box = tuple[int, int, int, int]


def decode_files(files: Iterable[Path], size: int, channels: int,
                 box_of: Callable[[Path], Box | None] | None = None,
                 ) -> tuple[list[np.ndarray], int, set[Shape]]:
    """The one decoding loop: each readable file as uint8 (C, S, S) (cropped first to the
    box ``box_of`` gives it, if any); the count of unreadable files (an unreadable box
    annotation, a ``SyntaxError`` such as XML's ParseError, counts too); the original
    (size, mode) pairs seen."""
    arrays, skipped, shapes = [], 0, set()
    for file in files:
        try:
            with Image.open(file) as image:
                shapes.add((image.size, image.mode))
                box = box_of(file) if box_of else None
                arrays.append(pil_to_square(image, size, channels, box))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped += 1
    return arrays, skipped, shapes


def read_folder(folder: Path, size: int, channels: int
                ) -> tuple[torch.Tensor, int, set[Shape]]:
    """Every image under a folder as (N, C, S, S); unreadable files skipped and counted."""
    files = image_files(folder)
    if not files:
        raise DataError(f"image folder {folder} has no images (looked for "
                        f"{', '.join(IMAGE_SUFFIXES)}, recursively)")
    arrays, skipped, shapes = decode_files(files, size, channels)
    if not arrays:
        raise DataError(f"image folder {folder}: none of its {len(files)} image files could be "
                        "read; check that they are valid images")
    return torch.from_numpy(np.stack(arrays)), skipped, shapes


def read_images(path: str | Path, size: int, channels: int) -> tuple[torch.Tensor, list[str]]:
    """Generated images to score: a folder of images, or a ``.npy`` / ``.pt`` uint8 array
    (N, H, W), (N, C, H, W) or (N, H, W, C). Images of another size or channel count
    are converted to (size, channels), and each conversion is reported as a note.
    """
    path = Path(path).expanduser()
    notes: list[str] = []
    if path.is_dir():
        images, skipped, shapes = read_folder(path, size, channels)
        if skipped:
            notes.append(f"skipped {skipped} unreadable files")
        odd = sorted({f"{w}x{h} {mode}" for (w, h), mode in shapes
                      if (w, h) != (size, size) or (mode == "L") != (channels == 1)})
        if odd:
            notes.append(f"converted images of {', '.join(odd[:3])} to {size}x{size} with "
                         f"{channels} channel(s)")
        return images, notes
    if path.suffix in (".npy", ".pt") and path.is_file():
        array = _read_array(path)
        shape = tuple(array.shape[1:])
        array = channels_first(array, path, notes)
        if len(array) == 0:
            raise DataError(f"{path}: the array holds no images")
        images = resize_array(array, size, channels)
        if shape not in ((size, size), (channels, size, size), (size, size, channels)):
            notes.append(f"converted images of shape {shape} to {channels}x{size}x{size}")
        return images, notes
    raise DataError(f"{path} is neither a folder of images nor a .npy/.pt file")


def _read_array(path: Path) -> np.ndarray:
    try:
        array = np.load(path) if path.suffix == ".npy" else \
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure is the user's file, said in one line
        raise DataError(f"{path}: could not read it as a {path.suffix} array: {err}") from None
    array = array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (3, 4):
        raise DataError(f"{path}: expected a uint8 array (N, H, W), (N, C, H, W) or "
                        f"(N, H, W, C) with values 0..255, got {array.dtype} {array.shape}")
    return array
