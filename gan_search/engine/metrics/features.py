"""Feature extractors for FID-lite, KID and the collapse metrics.

The default, ``randconv``, is a fixed *random* convolutional network. Its weights
are derived from a seed with NumPy's legacy ``RandomState`` (whose streams NumPy
guarantees never to change), so every machine builds bit-identical weights with no
download and no file to ship; ``weights_sha256()`` pins them in the tests. Random
conv features are a known-good embedding for images outside ImageNet (Naeem et al.
2020 evaluate with a randomly initialised VGG), and the validation tests show these
grow monotonically with five kinds of image disturbance.

Two resolutions: ``randconv32`` (images resized to 32x32, for spaces up to 40 px)
and ``randconv64`` (64x64, for larger images). The optional ``inception`` extractor
gives true-FID-style 2048-d pool features from Inception-v3 weights (a local file,
or torchvision's ImageNet weights downloaded when online); it is never the default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan_search.core.errors import DataError
from gan_search.core.vocabulary import EXTRACTORS

RANDCONV_SEED = 20170626  # the FID paper's arXiv date; any fixed value works
RANDCONV_VERSION = "v1"  # bump if the architecture or the weight derivation changes
_WIDTHS = (16, 32, 64, 128)


class RandConv(nn.Module):
    """uint8 images (N, C, H, W) -> float features (N, D), C in {1, 3}, any H = W.

    Images are resized to ``resolution``, grey is copied to RGB, one stride-1 conv
    is followed by stride-2 convs down to 4x4. Features: the spatial means of the
    last two layers plus the 2x2 average pool of the last (which keeps coarse
    layout, so geometric warps are seen, not only textures).
    """

    def __init__(self, resolution: int = 32):
        super().__init__()
        if resolution not in (32, 64):
            raise ValueError(f"randconv resolution must be 32 or 64, got {resolution}")
        self.resolution = resolution
        self.name = f"randconv{resolution}-{RANDCONV_VERSION}"
        widths = (3, *_WIDTHS) if resolution == 32 else (3, *_WIDTHS, _WIDTHS[-1])
        rng = np.random.RandomState(RANDCONV_SEED + resolution)
        self.weights = nn.ParameterList()
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            fan_in = c_in * 9
            w = rng.standard_normal((c_out, c_in, 3, 3)) * np.sqrt(2.0 / fan_in)  # He init
            self.weights.append(nn.Parameter(torch.from_numpy(w).float(), requires_grad=False))
        self.dim = widths[-2] + widths[-1] + 4 * widths[-1]

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _prepare(images, self.resolution)
        # channels-last: oneDNN's fast convolution layout on CPUs (measured 25% faster on
        # 800 images at 32 px, AMD EPYC Zen 4; the same features to float rounding)
        x = ((x - 0.5) / 0.25).contiguous(memory_format=torch.channels_last)
        means = []
        for i, weight in enumerate(self.weights):
            x = F.relu(F.conv2d(x, weight, stride=1 if i == 0 else 2, padding=1))
            if i >= len(self.weights) - 2:
                means.append(x.mean((2, 3)))
        # state size. 128 x 4 x 4 -> 2 x 2 layout features
        return torch.cat([*means, F.adaptive_avg_pool2d(x, 2).flatten(1)], 1)

    def weights_sha256(self) -> str:
        digest = hashlib.sha256()
        for weight in self.weights:
            digest.update(weight.detach().cpu().numpy().tobytes())
        return digest.hexdigest()


class InceptionFeatures(nn.Module):
    """Inception-v3 2048-d pool features, from a weights file or a download.

    The weights are torchvision's ``inception_v3`` state dict, and the network is
    torchvision's. That is not the network of the FID in papers: the standard FID weights
    (``pt_inception-2015-12-05``) have a 1008-class head, and the FID network differs from
    torchvision's Inception in some blocks and in how it scales its input, so no state dict
    loaded here reproduces the papers' FID; its values are close to it, not equal.
    """

    dim = 2048

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        from torchvision.models import Inception_V3_Weights, inception_v3

        model = inception_v3(weights=None, aux_logits=True, init_weights=False)
        # the name keys the cached real statistics: statistics from one weights file must
        # never be reused with another
        self.name = "inception-v3-torchvision-imagenet1k-v1"
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise DataError(f"Inception weights file {path} does not exist; give the path "
                                "of a torchvision inception_v3 state dict")
            self.name = f"inception-v3-{file_sha256(path)[:16]}"
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # any reader failure is the user's file, said in one line
                raise DataError(f"--inception-weights {path}: not a torch state dict "
                                f"({' '.join(str(err).split())[:200]})") from None
        else:
            try:
                state = Inception_V3_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
            except (OSError, RuntimeError) as err:
                reason = " ".join(str(err).split())
                raise DataError("the Inception-v3 extractor needs its weights: could not download "
                                f"them ({reason}); pass --inception-weights PATH with a local "
                                "copy, or use the default randconv extractor offline") from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise DataError(f"--inception-weights: not an inception_v3 state dict "
                            f"({' '.join(str(err).split())[:200]})") from None
        model.fc = nn.Identity()  # the 2048-d pool features
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _prepare(images, 299)
        mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
        return self.model((x - mean) / std)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1], 3 channels, resolution x resolution."""
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                          antialias=x.shape[-1] > resolution, align_corners=False)
    return x




def default_extractor(image_size: int) -> str:
    """randconv32 for images up to 40 px, randconv64 above."""
    return "randconv32" if image_size <= 40 else "randconv64"


def get_extractor(name: str, image_size: int, weights: str | Path | None = None) -> nn.Module:
    """An extractor by name ("auto" picks by image size)."""
    if name == "auto":
        name = default_extractor(image_size)
    if name == "randconv32":
        return RandConv(32)
    if name == "randconv64":
        return RandConv(64)
    if name == "inception":
        return InceptionFeatures(weights)
    raise DataError(f"unknown feature extractor {name!r}; valid: {', '.join(EXTRACTORS)}")


def embed(extractor: nn.Module, images: torch.Tensor, batch: int = 500,
          device: torch.device | str | None = None) -> np.ndarray:
    """Features of uint8 images as float64 numpy (N, D), in bounded-memory batches."""
    device = torch.device(device or "cpu")
    extractor = extractor.to(device)
    out = [extractor(chunk.to(device)).double().cpu() for chunk in images.split(batch)]
    return torch.cat(out).numpy()
