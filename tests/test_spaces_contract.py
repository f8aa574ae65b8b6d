"""Every shipped search space, as one contract: it parses, its settings are valid,
Optuna samples a configuration from it (through the same Tune -> Optuna conversion the
search uses), G and D build at the space's size, and one training step runs on CPU
(on synthetic data of that shape, since most spaces' datasets need a download)."""

import optuna
import pytest
import torch
from ray.tune.search.optuna import OptunaSearch

from gan_search.config import search_config
from gan_search.data import SOURCES, load_dataset
from gan_search.search import tune_space
from gan_search.space import list_spaces, load_space
from gan_search.train import GANTrainer


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_shipped_space(name, tmp_path):
    spec = load_space(name)
    assert spec.data.source in SOURCES
    config = search_config(spec, name="contract", runs_dir=str(tmp_path), sets={"batch_size": 4})
    distributions = OptunaSearch.convert_search_space(tune_space(config.searched))
    assert set(distributions) == set(config.searched)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sampled = study.ask(distributions).params
    for key, value in sampled.items():
        assert spec.params[key].contains(value), (key, value)
    trial = config.trial_config(sampled)
    data = load_dataset("fake", trial.image_size, trial.channels, {"n": 8})
    trainer = GANTrainer(trial, data.images)
    assert trainer.opt_g.param_groups[0]["lr"] == trial.lr_g
    losses = trainer.train_step()
    assert all(torch.isfinite(v) for v in losses.values())
    assert trainer.sample(2).shape == (2, spec.data.channels, spec.data.size, spec.data.size)
