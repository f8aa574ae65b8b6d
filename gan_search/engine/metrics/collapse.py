"""Mode-collapse measures on features and class predictions, and the combined score.

- Precision / recall / density / coverage (Naeem et al. 2020), by k-nearest neighbours.
- NDB/K (Richardson & Weiss 2018): k-means bins of the real features, a two-proportion
  z-test per bin, the share of bins whose proportions differ significantly.
- For labelled data: classes found among the samples, and KL(sample || real) of the
  predicted class histogram.

``collapse`` in [0, 1] is the mean of the available components, each 0 when the
samples look like fresh real data and 1 when every sample is the same mode:

    c_coverage = clip(1 - coverage / (1 - 2**-k), 0, 1)   # 1 - 2**-k: coverage of real vs real
    c_ndb      = clip((NDB/K - alpha) / (1 - alpha), 0, 1)  # alpha: the test's false-positive rate
    c_classes  = 1 - (classes_found - 1) / (num_classes - 1)   (labelled data only)
"""

from __future__ import annotations

import numpy as np

NEAREST_K = 5
NDB_ALPHA = 0.05
NDB_Z = 1.959963984540054  # two-sided 5% critical value
FOUND_SHARE = 0.25  # a class is found when it gets >= 25% of its expected count


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0)


def knn_radius(features: np.ndarray, k: int = NEAREST_K) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour (itself excluded)."""
    features = np.asarray(features, np.float64)
    # index k after partitioning: index 0 is the point itself, at distance 0
    return np.partition(_pairwise_sq(features, features), k, axis=1)[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K,
         real_radius: np.ndarray | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage with k-NN balls (Naeem et al. 2020).

    ``real_radius`` (from ``knn_radius(real)``) may be passed when it is cached.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real_radius is None:
        real_radius = knn_radius(real, k)
    fake_radius = knn_radius(fake, k)
    real_fake = _pairwise_sq(real, fake)
    inside = real_fake <= real_radius[:, None]  # (real i, fake j): fake j in real i's ball
    return {
        "precision": float(inside.any(0).mean()),
        "recall": float((real_fake <= fake_radius[None, :]).any(1).mean()),
        "density": float(inside.sum(0).mean() / k),
        "coverage": float(inside.any(1).mean()),
    }


def kmeans(features: np.ndarray, bins: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Centroids (bins, D) by k-means++ seeding and Lloyd iterations, deterministic."""
    x = np.asarray(features, np.float64)
    rng = np.random.RandomState(seed)
    centroids = [x[rng.randint(len(x))]]
    for _ in range(1, bins):
        d = _pairwise_sq(x, np.array(centroids)).min(1)
        total = d.sum()
        index = rng.choice(len(x), p=d / total) if total > 0 else rng.randint(len(x))
        centroids.append(x[index])
    c = np.array(centroids)
    for _ in range(iters):
        assign = _pairwise_sq(x, c).argmin(1)
        new = np.array([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(bins)])
        if np.allclose(new, c):
            break
        c = new
    return c


def bin_counts(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    assign = _pairwise_sq(np.asarray(features, np.float64), centroids).argmin(1)
    return np.bincount(assign, minlength=len(centroids))


def ndb_k(real_counts: np.ndarray, fake_counts: np.ndarray) -> float:
    """Share of bins whose real and generated proportions differ (two-proportion z-test)."""
    n1, n2 = real_counts.sum(), fake_counts.sum()
    p1, p2 = real_counts / n1, fake_counts / n2
    pooled = (real_counts + fake_counts) / (n1 + n2)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / n1 + 1 / n2), 1e-300))
    return float(np.mean(np.abs(p1 - p2) / se > NDB_Z))


def class_metrics(predicted: np.ndarray, real_hist: np.ndarray) -> dict[str, float]:
    """Classes found among samples and KL(sample histogram || real histogram)."""
    num_classes = len(real_hist)
    counts = np.bincount(predicted, minlength=num_classes).astype(np.float64)
    share = counts / counts.sum()
    expected = real_hist * counts.sum()
    found = int(np.sum(counts >= np.maximum(1, FOUND_SHARE * expected)))
    mask = share > 0
    kl = float(np.sum(share[mask] * np.log(share[mask] / real_hist[mask])))
    return {"classes_found": found, "class_kl": max(kl, 0.0)}


def collapse_score(coverage: float, ndb: float, classes_found: int | None = None,
                   num_classes: int | None = None, k: int = NEAREST_K) -> dict[str, float]:
    """The combined `collapse` score in [0, 1] and its components (see module doc)."""
    parts = {
        "collapse_coverage": float(np.clip(1 - coverage / (1 - 2.0 ** -k), 0, 1)),
        "collapse_ndb": float(np.clip((ndb - NDB_ALPHA) / (1 - NDB_ALPHA), 0, 1)),
    }
    if classes_found is not None and num_classes and num_classes >= 2:
        parts["collapse_classes"] = float(1 - (classes_found - 1) / (num_classes - 1))
    parts["collapse"] = float(np.mean(list(parts.values())))
    return parts
