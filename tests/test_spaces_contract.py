"""Every shipped search space, as one contract: it parses, its settings are valid,
Optuna samples a configuration from it (through the same Tune -> Optuna conversion the
search uses), G and D build at the space's size, and one training step runs on CPU
(on synthetic data of that shape, since most spaces' datasets need a download)."""

import re
from pathlib import Path

import optuna
import pytest
import torch
from ray.tune.search.optuna import OptunaSearch

from gan_search.core.config import search_config
from gan_search.engine.data import SOURCES, load_dataset
from gan_search.hpo.strategies.tuning import tune_space
from gan_search.core.space import list_spaces, load_space
from gan_search.engine.trainer import GANTrainer


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


SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"  # the tutorials, beside the checkout
SEED_FILE = re.compile(r"\d{3}_[0-9a-f]{16}\.txt")


@pytest.mark.parametrize("name", sorted(list_spaces()))
def test_shipped_space_carries_a_cited_baseline_inside_its_space(name):
    """Each baseline value names the tutorial (seed file) it comes from, with a quote; where
    the seed files are present (the project's machines), the quote is really in that file."""
    spec = load_space(name)
    assert spec.baseline is not None and spec.baseline.values
    point = search_config(spec, name="x").baseline_point()
    assert set(point) == set(spec.params)  # a full point of the searched space
    for key, value in spec.baseline.values.items():
        assert key in spec.params or spec.fixed.get(key) == value
        source = spec.baseline.sources[key]
        files, quotes = SEED_FILE.findall(source), re.findall(r"`([^`]+)`", source)
        assert files and quotes, (name, key, source)
        if SEEDS.is_dir():
            text = (SEEDS / files[-1]).read_text()
            assert quotes[-1] in text, (name, key, quotes[-1])


def test_a_baseline_outside_its_space_is_refused(tmp_path):
    from gan_search.core.errors import SpaceError
    from gan_search.core.space import parse_space

    raw = {"data": {"source": "fake"}, "parameters": {"lr_g": {"kind": "loguniform", "low": 1e-4,
                                                              "high": 1e-2}},
           "fixed": {"batch_size": 32}}
    for baseline, message in [
        ({"values": {"lr_g": 0.5}, "sources": {"lr_g": "x"}}, "outside the searched range"),
        ({"values": {"batch_size": 64}, "sources": {"batch_size": "x"}}, "differs from fixed"),
        ({"values": {"beta1": 0.5}, "sources": {"beta1": "x"}}, "not a searched"),
        ({"values": {"lr_g": 2e-4}, "sources": {}}, "say where the value comes from"),
    ]:
        with pytest.raises(SpaceError, match=message):
            parse_space({**raw, "baseline": baseline}, "s.yaml")
