"""The FID (and KID) of papers, through torch-fidelity (the `fid` extra): the TF-Inception
network of the standard FID (``pt_inception-2015-12-05``, 1008-class head, its own blocks
and input scaling, 2048-d pool features), images resized as TF did. Never the search's
score (FID-lite is: offline, fast, deterministic); what a user reports beside papers.

The weights: a file given, else the copy torch-fidelity keeps in torch's hub cache after
its first download. Offline without either: one line saying how to get them.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch

from gan_search.core.errors import ConfigError

WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")


def weights_file(path: str | Path | None) -> Path:
    """The FID Inception weights: ``path``, else torch-fidelity's cached download."""
    found = Path(path).expanduser() if path else \
        Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[1]
    if not found.is_file():
        raise ConfigError(f"the standard FID needs the FID Inception weights "
                          f"({'--fid-weights ' + str(path) + ' is not a file' if path else 'none cached'}); "
                          f"download {WEIGHTS_URL} and pass --fid-weights PATH")
    return found


def check_standard(weights: str | Path | None) -> str:
    """The weights file the standard FID would use (one line when torch-fidelity or the
    weights are missing): checked before any slow step."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        raise ConfigError("the standard FID needs torch-fidelity: pip install "
                          "'gan-search[fid]'") from None
    return str(weights_file(weights))


class _Images(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) as torch-fidelity reads them: 3 channels."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images if images.shape[1] == 3 else images.expand(-1, 3, -1, -1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def standard_scores(generated: torch.Tensor, reference: torch.Tensor,
                    weights: str | Path | None = None) -> dict[str, float]:
    """FID and KID (torch-fidelity's) of ``generated`` against ``reference`` (uint8)."""
    with standard_scorer(reference, weights) as score:
        return score(generated)


@contextlib.contextmanager
def standard_scorer(reference: torch.Tensor, weights: str | Path | None = None
                    ) -> Iterator[Callable[[torch.Tensor], dict[str, float]]]:
    """A scorer of many generated sets against one reference: its FID and KID, the
    reference's features computed once (torch-fidelity's cache, in a folder that lives as long
    as the context). The library and the weights are checked on entry."""
    path = check_standard(weights)
    import torch_fidelity

    with tempfile.TemporaryDirectory(prefix="gan-search-fid-") as cache:
        def score(generated: torch.Tensor) -> dict[str, float]:
            metrics = torch_fidelity.calculate_metrics(
                input1=_Images(generated), input2=_Images(reference), fid=True, kid=True,
                kid_subset_size=min(1000, len(generated), len(reference)),
                feature_extractor_weights_path=path, cuda=torch.cuda.is_available(),
                verbose=False, save_cpu_ram=True, cache=True, cache_root=cache,
                input2_cache_name="reference")
            return {"fid": float(metrics["frechet_inception_distance"]),
                    "kid_standard": float(metrics["kernel_inception_distance_mean"])}

        yield score
