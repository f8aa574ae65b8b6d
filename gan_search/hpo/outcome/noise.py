"""Ties: two scores closer than their noise are not a ranking.

Every FID-lite comes with its standard deviation (``fid_lite_std``: over generated sets, the
reference fixed; ``engine.metrics.distances.frechet_with_noise``); a confirmed configuration's
mean with its standard error over fresh seeds. Two values are *tied* when their difference
is at most ``TIE_SIGMAS`` standard deviations of the difference (independent errors: the
square root of the sum of both variances), about a 95% two-sided test. A value without a
finite noise is never tied. Pure Python.
"""

from __future__ import annotations

import math
from typing import Any

TIE_SIGMAS = 2.0


def number(value: Any) -> float:
    """A reported metric as a float; nan when it is missing or not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else math.nan


def score_noise(metrics: dict[str, Any]) -> float:
    """A trial's score noise: FID-lite's at its best evaluation, when FID-lite is what the
    trial is ranked by (the first objective); nan otherwise or when unknown."""
    ranked_by_fid = metrics.get("score") == metrics.get("score_fid_lite")
    return number(metrics.get("fid_lite_std_at_best")) if ranked_by_fid else math.nan


def difference_noise(noise_a: float, noise_b: float) -> float:
    """The standard deviation of a difference of two independent estimates (nan if either
    noise is unknown)."""
    if not (math.isfinite(noise_a) and math.isfinite(noise_b)):
        return math.nan
    return math.hypot(noise_a, noise_b)


def tied(a: float, noise_a: float, b: float, noise_b: float) -> bool:
    """True when a and b differ by at most TIE_SIGMAS standard deviations of the difference."""
    spread = difference_noise(noise_a, noise_b)
    return math.isfinite(a) and math.isfinite(b) and math.isfinite(spread) and \
        abs(a - b) <= TIE_SIGMAS * spread


def rank_labels(scored: list[tuple[float, float]]) -> list[str]:
    """Rank labels for (value, noise) pairs already sorted best (lowest) first: "1", "2", ...,
    with tied values sharing the rank of the first of their group, marked "=" ("2=", "2=").
    A group is the values tied with its first value (not a chain of neighbours)."""
    labels = [str(i) for i in range(1, len(scored) + 1)]
    first = 0
    for i in range(1, len(scored)):
        if tied(*scored[i], *scored[first]):
            labels[first] = labels[i] = f"{first + 1}="
        else:
            first = i
    return labels


def verdict(mine: float, noise_mine: float, theirs: float, noise_theirs: float) -> str:
    """Whether a difference is beyond noise, in words (for the best-vs-baseline line)."""
    spread = difference_noise(noise_mine, noise_theirs)
    if not (math.isfinite(spread) and math.isfinite(mine) and math.isfinite(theirs)):
        return "noise unknown"
    if spread == 0:
        return "beyond noise" if mine != theirs else "a tie"
    ratio = abs(theirs - mine) / spread
    if ratio <= TIE_SIGMAS:
        return f"within noise, a tie (the difference is {ratio:.1f}x its standard deviation " \
               f"{spread:.3f})"
    return f"beyond noise (the difference is {ratio:.1f}x its standard deviation {spread:.3f})"
