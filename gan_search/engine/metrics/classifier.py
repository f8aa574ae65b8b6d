"""A small domain classifier for labelled datasets, trained once and cached.

It tells which class each generated sample looks like, for the `classes found` and
class-histogram KL collapse measures. Trained on 80% of the real images, its accuracy
on the other 20% is kept with it and reported with every score that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_search.engine.atomic import save_atomic

CLASSIFIER_VERSION = 4  # part of the cache file name: bump when the model or its training changes


class DomainClassifier(nn.Module):
    """uint8 images (N, C, H, W) -> class logits (N, K), any H = W >= 8.

    Images larger than 32 px are resized to 32 first, which bounds the cost of
    training and prediction for every space.
    """

    def __init__(self, channels: int, num_classes: int, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.BatchNorm2d(width),
                                   nn.ReLU(True)]  # state size. w x S x S (S <= 32)
        for _ in range(3):
            layers += [nn.Conv2d(width, width * 2, 3, 2, 1), nn.BatchNorm2d(width * 2), nn.ReLU(True)]
            width *= 2  # state size. (2w) x S/2 x S/2, ending at 8w x S/8 x S/8
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled features (N, 8 * width) the class logits are read from."""
        x = images.float() / 127.5 - 1.0
        if x.shape[-1] > 32:
            x = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        return self.body(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@dataclass
class TrainedClassifier:
    model: DomainClassifier
    accuracy: float
    num_classes: int
    steps: int = 0  # training steps taken (0: loaded from the cache)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
        self.model.eval()
        return torch.cat([self.model(chunk).argmax(1) for chunk in images.split(batch)])


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     steps: int = 500, batch_size: int = 64, seed: int = 0,
                     check_every: int = 50) -> TrainedClassifier:
    """Train on a seeded 80% split; accuracy on the held-out 20%. CPU-deterministic.

    Training stops early, at a multiple of ``check_every`` steps, once every held-out image
    is classified right: the measure it is kept for can see nothing more to learn (easy
    data, such as the offline ``fake`` source, gets there in 50 steps of the 500)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    cut = max(1, int(0.8 * len(images)))
    train_idx, test_idx = order[:cut], order[cut:] if cut < len(images) else order[:cut]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(images.shape[1], num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    trained = TrainedClassifier(model, 0.0, num_classes)
    model.train()
    for step in range(1, steps + 1):
        pick = train_idx[torch.randint(len(train_idx), (min(batch_size, len(train_idx)),),
                                       generator=generator)]
        loss = F.cross_entropy(model(images[pick]), labels[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        trained.steps = step
        if step % check_every == 0 or step == steps:
            trained.accuracy = float((trained.predict(images[test_idx]) == labels[test_idx])
                                     .float().mean())
            if trained.accuracy == 1.0:
                break
            model.train()  # predict() left it in eval mode
    return trained


def load_or_train(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                  cache_path: Path | None) -> TrainedClassifier:
    """The cached classifier for a dataset, training (and caching) it on first use."""
    if cache_path is not None and cache_path.is_file():
        saved = torch.load(cache_path, weights_only=True)
        if saved.get("version") == CLASSIFIER_VERSION:
            model = DomainClassifier(images.shape[1], num_classes)
            model.load_state_dict(saved["state"])
            return TrainedClassifier(model, float(saved["accuracy"]), num_classes)
    trained = train_classifier(images, labels, num_classes)
    if cache_path is not None:
        save_atomic(cache_path, {"version": CLASSIFIER_VERSION, "accuracy": trained.accuracy,
                                 "state": trained.model.state_dict()})
    return trained
