"""Every shipped search space: parses, its settings are valid, its models build at the
space's size, and one training step runs on CPU (on synthetic data of that shape,
since most spaces' datasets need a download)."""

import pytest
import torch

from gan_search.config import check_space_params, config_from_space
from gan_search.data import SOURCES, load_dataset
from gan_search.space import list_spaces, load_space
from gan_search.train import GANTrainer


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_shipped_space(name):
    spec = load_space(name)
    check_space_params(spec)
    assert spec.data.source in SOURCES
    # the smallest widths of the space keep the step cheap; every other default stays
    smallest = {k: min(p.values) if p.kind == "choice" else p.low
                for k, p in spec.params.items() if k in ("g_width", "d_width")}
    config = config_from_space(spec, {**smallest, "batch_size": 4})
    data = load_dataset("fake", config.image_size, config.channels, {"n": 8})
    trainer = GANTrainer(config, data.images)
    losses = trainer.train_step()
    assert all(torch.isfinite(v) for v in losses.values())
    assert trainer.sample(2).shape == (2, config.channels, spec.data.size, spec.data.size)
