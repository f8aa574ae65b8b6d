"""Fréchet distance and KID between two sets of features. numpy/scipy, float64."""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features (N, D), in float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray,
                     mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), computed without complex numbers.

    Tr((S1 S2)^1/2) equals Tr((A S2 A)^1/2) with A = S1^1/2, and A S2 A is symmetric
    positive semi-definite, so two symmetric eigendecompositions give it exactly;
    round-off negatives are clipped to 0. For D of a few hundred this takes
    milliseconds, and unlike scipy.linalg.sqrtm it cannot return complex values.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root1 = matrix_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)
    return max(value, 0.0)


def matrix_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance (round-off negatives clipped to 0):
    cacheable for a fixed reference."""
    values, vectors = np.linalg.eigh((sigma + sigma.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_with_noise(mu_r: np.ndarray, root_r: np.ndarray,
                       features: np.ndarray) -> tuple[float, float]:
    """The Fréchet distance of generated features (M, D) from a fixed reference (mean
    ``mu_r``, covariance square root ``root_r``), and its standard deviation over generated
    sets of M, estimated from these samples alone.

    The estimate is the delta method's (the influence function of the distance as a function
    of the generated mean and covariance): with S = root_r Sg root_r = V L V', the distance's
    gradient is 2 (mu_g - mu_r) for the mean and G = I - root_r V L^-1/2 V' root_r for the
    covariance, so each sample's influence is psi_i = 2 (mu_g - mu_r).x_i + x_i' G x_i
    (x_i centred), and the distance's variance is Var(psi) / M. Checked against independent
    generated sets in benchmarks/score_noise.py. Only the generated side's noise: a search
    scores every trial against the same reference.
    """
    features = np.asarray(features, np.float64)
    m = len(features)
    mu = features.mean(0)
    x = features - mu
    y = x @ root_r  # S = root_r Sg root_r = y'y / (m - 1): no D x D x D product
    middle = y.T @ y / (m - 1)
    values, vectors = np.linalg.eigh((middle + middle.T) / 2)
    squares = (x * x).sum(1)  # their sum / (m - 1) is the trace of Sg
    value = float(((mu - mu_r) ** 2).sum() + (root_r ** 2).sum() + squares.sum() / (m - 1)
                  - 2 * np.sqrt(np.clip(values, 0, None)).sum())  # as frechet_distance
    keep = values > max(values.max(), 0.0) * 1e-10  # the reference's null space has no say
    values, vectors = values[keep], vectors[:, keep]
    # x' G x = |x|^2 - sum_j (x.root_r v_j)^2 / sqrt(l_j): G itself is never built
    projected = y @ vectors
    influence = 2 * x @ (mu - mu_r) + squares - (projected ** 2 / np.sqrt(values)).sum(1)
    return max(value, 0.0), float(influence.std(ddof=1) / np.sqrt(m))


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 10, subset_size: int = 1000,
        seed: int = 0) -> float:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic
    polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets.

    With at most ``subset_size`` samples per side the full sets are used once.
    The estimator is unbiased, so values for matching distributions scatter around 0
    and may be slightly negative.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(len(real), len(fake), subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per side, got {len(real)} and {len(fake)}")
    if m == len(real) == len(fake):
        return kid_terms(real, fake, kernel_mean_offdiag(real))
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        total += kid_terms(x, y, kernel_mean_offdiag(x))
    return float(total / subsets)


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


def kernel_mean_offdiag(x: np.ndarray) -> float:
    """Mean of k(x_i, x_j) over i != j: the real-real term, cacheable per reference set."""
    k_xx = _kernel(x, x)
    m = len(x)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)))


def kid_terms(real: np.ndarray, fake: np.ndarray, real_term: float) -> float:
    """Unbiased MMD^2 of full sets, given the real-real term."""
    m = len(fake)
    k_yy = _kernel(fake, fake)
    return float(real_term + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
                 - 2 * _kernel(real, fake).mean())
