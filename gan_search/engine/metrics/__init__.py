"""Scores a search can trust: FID-lite, KID and mode-collapse metrics (torch + numpy/scipy)."""

from gan_search.engine.metrics.collapse import collapse_score, ndb_k, prdc
from gan_search.engine.metrics.distances import frechet_distance, gaussian_stats, kid
from gan_search.engine.metrics.evaluator import Evaluator
from gan_search.engine.metrics.features import EXTRACTORS, RandConv, default_extractor, get_extractor

__all__ = ["Evaluator", "EXTRACTORS", "RandConv", "collapse_score", "default_extractor",
           "frechet_distance", "gaussian_stats", "get_extractor", "kid", "ndb_k", "prdc"]
