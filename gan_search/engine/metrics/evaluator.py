"""Evaluator: every score of one set of generated images against cached real statistics.

The real side (features of a fixed, seeded subset of N images of the held-out reference,
their Gaussian fit, k-means bins and class histogram) is computed once per (reference,
image size, channels, extractor, N) and cached under the dataset cache, so a trial's
evaluation only embeds its own samples. The domain classifier of labelled data is trained
on the training images, never on the reference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_search.engine.data import Dataset, cache_dir
from gan_search.engine.atomic import save_atomic
from gan_search.engine.metrics import collapse as cm
from gan_search.engine.metrics.classifier import CLASSIFIER_VERSION, TrainedClassifier, load_or_train
from gan_search.engine.metrics.distances import (frechet_with_noise, gaussian_stats,
                                                 kernel_mean_offdiag, kid_terms, matrix_sqrt)
from gan_search.engine.metrics.features import default_extractor, embed, get_extractor

# FID-lite compares GENERATED_PER_REFERENCE x N generated images with the N reference images.
# Measured (benchmarks/results/cpu-vm-score-noise.md): the noise falls as 1/sqrt(generated)
# (4 x N halved it on digits, 0.36 to 0.17, with the same rank agreement with an independent
# check); 4 x N cost 6.7% of digits' training per evaluation, over the 5% budget, 2 x N
# fits it (noise about 0.71 of N's). At most GENERATED_MAX (never fewer than N): spaces with
# N = 2,000 keep their evaluation cost
GENERATED_PER_REFERENCE, GENERATED_MAX = 2, 2000
STATS_VERSION = 5  # 3: the reference is held out from training (part of the key too); 4: root;
# 5: randconv features computed channels-last (equal to float rounding)


def generated_for(n: int) -> int:
    """How many generated images FID-lite compares with N reference images."""
    return max(n, min(GENERATED_PER_REFERENCE * n, GENERATED_MAX))


def ndb_bins(n: int) -> int:
    """k-means bins for NDB/K: about 50 real samples a bin, between 5 and 50 bins."""
    return int(min(50, max(5, n // 50)))


class Evaluator:
    """Scores generated uint8 images against a dataset.

    Args:
        data: the real reference (images uint8 (N, C, H, W), optional labels): images the
            generator never trained on (``data.load_splits``).
        n: the sample count of the real reference (all real images when it has fewer), and
            of the generated images every score but FID-lite uses. Part of the score's identity.
        generated: the generated images FID-lite uses (default ``generated_for(n)``: 2 x n,
            at most 2,000, at least n):
            ``score`` needs at least this many. Part of FID-lite's identity.
        dataset_key: cache key of the reference (``Splits.reference_key``); None disables
            caching.
        extractor: "auto" (randconv by image size), "randconv32", "randconv64", "inception".
        inception_weights: local weights file for the inception extractor.
        train, train_key: the training images (and their cache key) that the domain
            classifier of labelled data learns from; default: ``data``.
    """

    def __init__(self, data: Dataset, n: int, dataset_key: str | None = None,
                 extractor: str = "auto", inception_weights: str | Path | None = None,
                 device: str | torch.device | None = None, train: Dataset | None = None,
                 train_key: str | None = None, generated: int | None = None):
        if n < 2 * cm.NEAREST_K:
            raise ValueError(f"the sample count must be at least {2 * cm.NEAREST_K}, got {n}")
        self.n = n
        self.generated = max(n, generated or generated_for(n))
        self.image_shape = tuple(data.images.shape[1:])
        self.device = torch.device(device or "cpu")
        self.extractor_key = default_extractor(self.image_shape[-1]) if extractor == "auto" \
            else extractor
        self.extractor = get_extractor(self.extractor_key, self.image_shape[-1],
                                       inception_weights).eval()
        self.extractor_name = self.extractor.name
        cache = cache_dir() if dataset_key is not None else None
        stats_path = cache / "stats" / f"{dataset_key}-{self.extractor_name}-n{n}.pt" if cache else None
        self.reference = self._reference(data, stats_path)
        self.classifier: TrainedClassifier | None = None
        train, train_key = (train, train_key) if train is not None else (data, dataset_key)
        if train.labels is not None and data.labels is not None and len(train.classes) >= 2:
            self.classifier = load_or_train(
                train.images, train.labels, len(train.classes),
                cache / "classifiers" / f"{train_key}-v{CLASSIFIER_VERSION}.pt" if cache else None)
            predicted = self.classifier.predict(self.reference["images"])
            hist = np.bincount(predicted.numpy(), minlength=len(data.classes)) + 0.5
            self.reference["class_hist"] = hist / hist.sum()  # smoothed: never 0


    @classmethod
    def for_splits(cls, splits: Any, n: int, **options: Any) -> "Evaluator":
        """The evaluator of a dataset's ``data.splits.Splits``: its held-out reference (``n``
        images at most; the real statistics cached under its key) and its training images
        (for the memorisation score); ``options`` as ``__init__``'s."""
        return cls(splits.reference, n=min(n, len(splits.reference.images)),
                   dataset_key=splits.reference_key, train=splits.train,
                   train_key=splits.train_key, **options)
    def state(self) -> dict:
        """Everything a trial needs to rebuild this evaluator without the dataset or the
        driver's disk (sent to trials through the Ray object store)."""
        classifier = None
        if self.classifier is not None:
            classifier = {"state": self.classifier.model.state_dict(),
                          "accuracy": self.classifier.accuracy,
                          "num_classes": self.classifier.num_classes}
        return {"n": self.n, "generated": self.generated, "image_shape": self.image_shape,
                "extractor": self.extractor_key, "reference": self.reference,
                "classifier": classifier}

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device | None = None,
                   inception_weights: str | Path | None = None) -> "Evaluator":
        from gan_search.engine.metrics.classifier import DomainClassifier

        evaluator = cls.__new__(cls)
        evaluator.n = state["n"]
        evaluator.generated = state["generated"]
        evaluator.image_shape = tuple(state["image_shape"])
        evaluator.device = torch.device(device or "cpu")
        evaluator.extractor_key = state["extractor"]
        evaluator.extractor = get_extractor(state["extractor"], evaluator.image_shape[-1],
                                            inception_weights).eval()
        evaluator.extractor_name = evaluator.extractor.name
        evaluator.reference = state["reference"]
        evaluator.classifier = None
        if state["classifier"] is not None:
            info = state["classifier"]
            model = DomainClassifier(evaluator.image_shape[0], info["num_classes"])
            model.load_state_dict(info["state"])
            evaluator.classifier = TrainedClassifier(model, info["accuracy"], info["num_classes"])
        return evaluator

    def _reference(self, data: Dataset, path: Path | None) -> dict:
        if path is not None and path.is_file():
            saved = torch.load(path, weights_only=True)
            if saved.get("version") == STATS_VERSION:
                return {k: v.numpy() if isinstance(v, torch.Tensor) and k != "images" else v
                        for k, v in saved.items()}
        generator = torch.Generator().manual_seed(0)
        index = torch.randperm(len(data.images), generator=generator)[:self.n]
        images = data.images[index.sort().values]
        features = embed(self.extractor, images, device=self.device)
        mu, sigma = gaussian_stats(features)
        centroids = cm.kmeans(features, ndb_bins(len(features)))
        ref = {"version": STATS_VERSION, "images": images, "features": features, "mu": mu,
               "sigma": sigma, "root": matrix_sqrt(sigma), "centroids": centroids,
               "bin_counts": cm.bin_counts(features, centroids),
               # cached so that an evaluation only computes terms involving its own samples
               "knn_radius": cm.knn_radius(features), "kid_real_term": kernel_mean_offdiag(features)}
        if path is not None:
            save_atomic(path, {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                               for k, v in ref.items()})
        return ref

    @property
    def n_real(self) -> int:
        return len(self.reference["features"])

    def score(self, images: torch.Tensor) -> dict[str, float | int | str]:
        """All scores for generated uint8 images: FID-lite (and its noise) on the first
        ``generated``, every other score on the first n."""
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"expected uint8 images of shape (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {images.dtype} {tuple(images.shape)}")
        if len(images) < self.generated:
            raise ValueError(f"need at least {self.generated} generated images, got {len(images)}")
        started = time.perf_counter()
        ref = self.reference
        every = embed(self.extractor, images[:self.generated], device=self.device)
        images, features = images[:self.n], every[:self.n]
        fid, noise = frechet_with_noise(ref["mu"], ref["root"], every)
        scores: dict[str, float | int | str] = {
            "fid_lite": fid, "fid_lite_std": noise,
            "kid": kid_terms(ref["features"], features, float(ref["kid_real_term"])),
        }
        scores.update(cm.prdc(ref["features"], features, real_radius=ref["knn_radius"]))
        scores["ndb_k"] = cm.ndb_k(ref["bin_counts"], cm.bin_counts(features, ref["centroids"]))
        found = num_classes = None
        if self.classifier is not None:
            classes = cm.class_metrics(self.classifier.predict(images).numpy(), ref["class_hist"])
            scores.update(classes)
            found, num_classes = int(classes["classes_found"]), self.classifier.num_classes
            scores["num_classes"] = num_classes
            scores["classifier_accuracy"] = self.classifier.accuracy
        scores.update(cm.collapse_score(float(scores["coverage"]), float(scores["ndb_k"]),
                                        found, num_classes))
        scores.update({"fid_lite_extractor": self.extractor_name, "fid_lite_n": self.n,
                       "fid_lite_generated": self.generated,
                       "n_real": self.n_real, "eval_seconds": time.perf_counter() - started})
        return scores
