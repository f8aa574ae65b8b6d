"""The ``cats`` source: Oxford-IIIT Pet's cats, cropped to the annotated head box where one
exists, else to the bounding box of the segmentation foreground. Both official splits are
used. ``decode_pet_cats`` reads a folder laid out as the dataset is (tests make one)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from gan_search.core.errors import DataError
from gan_search.engine.data.images import Box, Decoded, decode_files


def load_cats(size: int, channels: int, options: Mapping[str, Any], root: Path) -> Decoded:
    import torchvision.datasets as tvd

    from gan_search.engine.data.sources import torchvision_dataset

    for split in ("trainval", "test"):
        torchvision_dataset("cats", tvd.OxfordIIITPet, root, split=split)
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
    files = [base / "images" / f"{image_id}.jpg" for image_id in sorted(set(ids))]
    arrays, skipped, _ = decode_files(files, size, channels, box_of=lambda file: (
        _head_box(base, file.stem) or _foreground_box(base, file.stem)))
    if not arrays:
        raise DataError(f"no cat images found in {base}; expected annotations/trainval.txt "
                        "and images/*.jpg of the Oxford-IIIT Pet dataset")
    labels = torch.zeros(len(arrays), dtype=torch.int64)  # binary label: 0 = cat
    return torch.from_numpy(np.stack(arrays)), labels, ("cat",), skipped


def _head_box(base: Path, image_id: str) -> Box | None:
    path = base / "annotations" / "xmls" / f"{image_id}.xml"
    if not path.is_file():
        return None
    box = ET.parse(path).find(".//object/bndbox")
    if box is None:
        return None
    xmin, ymin, xmax, ymax = (int(float(box.findtext(k, "0"))) for k in ("xmin", "ymin", "xmax", "ymax"))
    return _square_box(xmin, ymin, xmax, ymax)


def _foreground_box(base: Path, image_id: str) -> Box | None:
    path = base / "annotations" / "trimaps" / f"{image_id}.png"
    if not path.is_file():
        return None
    with Image.open(path) as trimap:
        mask = np.asarray(trimap) == 1  # trimap: 1 pet, 2 background, 3 border
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return None
    return _square_box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def _square_box(xmin: int, ymin: int, xmax: int, ymax: int) -> Box:
    """Grow a box to a square around its centre (PIL pads outside the image with black)."""
    side = max(xmax - xmin, ymax - ymin)
    cx, cy = (xmin + xmax) // 2, (ymin + ymax) // 2
    return cx - side // 2, cy - side // 2, cx - side // 2 + side, cy - side // 2 + side
