"""Datasets: the source registry (sources.py, with the cats decoder in pets.py), the cache
(cache.py), the held-out reference (splits.py) and image conversions (images.py).
torch + numpy + PIL; torchvision only when a torchvision source is loaded."""

from gan_search.engine.data.cache import Dataset, cache_dir, dataset_key, load_dataset
from gan_search.engine.data.images import (IMAGE_SUFFIXES, pil_to_square, read_images,
                                           resize_array)
from gan_search.engine.data.pets import decode_pet_cats
from gan_search.engine.data.sources import SOURCES, Source, source_entry
from gan_search.engine.data.splits import Splits, hold_out, load_splits

__all__ = ["Dataset", "IMAGE_SUFFIXES", "SOURCES", "Source", "Splits", "cache_dir",
           "dataset_key", "decode_pet_cats", "hold_out", "load_dataset", "load_splits",
           "pil_to_square", "read_images", "resize_array", "source_entry"]
