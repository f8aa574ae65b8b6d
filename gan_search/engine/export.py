"""A generator as files a plain PyTorch user loads, and samples as a folder of images.

- ``generator.pt2``: the generator as ``torch.export``'s program, any batch size:
  ``torch.export.load(path).module()(z)`` with ``z`` standard normal of shape
  ``(n, z_dim, 1, 1)`` gives ``n`` images ``(n, channels, size, size)`` in ``[-1, 1]``;
  no gan_search needed to load it.
- ``generator.json`` beside it: that recipe (z_dim, image size, channels, value range), the
  step it was saved at and the whole training configuration.
- ``write_images``: one PNG per sample (``000000.png`` ...), for tools that read a folder
  (FID implementations, dataset viewers).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from PIL import Image

from gan_search.core.config import TrainConfig
from gan_search.engine.trainer import to_uint8

PROGRAM_FILE, ABOUT_FILE = "generator.pt2", "generator.json"


def export_generator(gen: torch.nn.Module, config: TrainConfig, step: int, folder: Path,
                     source: str = "") -> list[Path]:
    """``gen`` (as ``models.load_generator`` gives it) exported into ``folder`` (made whole
    in a temporary folder beside it, then moved in: never half-written)."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = torch.randn(2, config.z_dim, 1, 1)
    with torch.no_grad():
        program = torch.export.export(gen, (example,), dynamic_shapes=({0: batch},))
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as tmp:
        torch.export.save(program, Path(tmp) / PROGRAM_FILE)
        about = {"load": "torch.export.load(path).module()(z)",
                 "z": ["n", config.z_dim, 1, 1], "z_distribution": "standard normal",
                 "images": ["n", config.channels, config.image_size, config.image_size],
                 "value_range": [-1, 1], "step": step, "source": source,
                 "config": config.to_dict()}
        (Path(tmp) / ABOUT_FILE).write_text(json.dumps(about, indent=2))
        folder.mkdir(exist_ok=True)
        for name in (PROGRAM_FILE, ABOUT_FILE):
            shutil.move(Path(tmp) / name, folder / name)
    return [folder / PROGRAM_FILE, folder / ABOUT_FILE]


def write_images(images: torch.Tensor, folder: Path) -> list[Path]:
    """Each image of a batch in ``[-1, 1]`` as its own PNG in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(images.float()).permute(0, 2, 3, 1).numpy()
    paths = []
    for i, image in enumerate(pixels):
        path = folder / f"{i:06d}.png"
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
        paths.append(path)
    return paths
