"""Loss balancing (the faces tutorial's rule, engine/balance.py): with the rule on, the side
that is far stronger does not train that step and the other does; off, both always train;
both skipped falls back to both training; a checkpoint continues identically."""

import dataclasses

import pytest
import torch
from torch import nn

from gan_search.core.config import TrainConfig
from gan_search.core.errors import ConfigError
from gan_search.engine.data import load_dataset
from gan_search.engine.trainer import GANTrainer

BASE = TrainConfig.from_dict({"image_size": 16, "channels": 3, "z_dim": 8, "g_width": 8,
                              "d_width": 8, "batch_size": 16, "precision": "fp32",
                              "compile": "off", "iters": 10, "eval_every": 10,
                              "balance_losses": True})


@pytest.fixture(scope="module")
def images():
    return load_dataset("fake", 16, 3, {"n": 64, "classes": 4}).images


class Shifted(nn.Module):
    """D with a fixed offset added to its logits, by call: a step calls D on the real batch,
    on the fakes for D's loss, then on the fakes for G's loss. The gradients still reach D's
    own parameters, so an update that happens changes them."""

    def __init__(self, disc: nn.Module, real: float, fake: float):
        super().__init__()
        self.disc, self.offsets, self.calls = disc, [real, fake, fake], 0

    def forward(self, x):
        offset = self.offsets[self.calls % 3]
        self.calls += 1
        return self.disc(x) + offset


def one_step(images, real: float, fake: float, **changes):
    """(G changed, D changed, the balancer) after one step with D's logits shifted."""
    trainer = GANTrainer(dataclasses.replace(BASE, **changes), images, device="cpu")
    trainer._d = Shifted(trainer.disc, real, fake)
    g0 = [p.detach().clone() for p in trainer.gen.parameters()]
    d0 = [p.detach().clone() for p in trainer.disc.parameters()]
    trainer.train_step()
    moved = lambda before, module: any(not torch.equal(a, b) for a, b in  # noqa: E731
                                       zip(before, module.parameters()))
    return moved(g0, trainer.gen), moved(d0, trainer.disc), trainer


def test_a_far_stronger_discriminator_skips_its_step_and_the_generator_trains(images):
    # D is sure of both: real at +8, fakes at -8: d_loss ~ 0, g_loss ~ 8
    g_moved, d_moved, trainer = one_step(images, real=8.0, fake=-8.0)
    assert g_moved and not d_moved
    assert trainer.skip_shares() == {"skipped_d": 1.0, "skipped_g": 0.0}


def test_a_far_stronger_generator_skips_its_step_and_the_discriminator_trains(images):
    # D is fooled both ways: real at -8, fakes at +8: d_loss ~ 8, g_loss ~ 0
    g_moved, d_moved, trainer = one_step(images, real=-8.0, fake=8.0)
    assert d_moved and not g_moved
    assert trainer.skip_shares() == {"skipped_d": 0.0, "skipped_g": 1.0}


def test_each_factor_applies_to_its_own_side(images):
    """The tutorial's form with its factors: G skips when g_loss * 1.5 < d_loss, D when
    d_loss * 2 < g_loss (d_loss: the mean of D's real and fake halves). Either factor used
    for the other side changes these answers."""
    from gan_search.engine.balance import Balancer

    rule = Balancer(g_factor=1.5, d_factor=2.0)
    assert rule.decide(loss_d=2.0, loss_g=0.6) == (True, False)  # 0.9 < 1.0: G skips
    assert rule.decide(loss_d=1.2, loss_g=1.0) == (True, True)  # 1.2 > 1.0: D trains
    assert rule.decide(loss_d=0.8, loss_g=1.0) == (False, True)  # 0.8 < 1.0: D skips
    trainer = GANTrainer(dataclasses.replace(BASE, balance_g_factor=1.25, balance_d_factor=3.0),
                         images, device="cpu")
    assert (trainer.balancer.g_factor, trainer.balancer.d_factor) == (1.25, 3.0)


@pytest.mark.parametrize("real,fake", [(8.0, -8.0), (-8.0, 8.0)])
def test_off_both_sides_always_train(images, real, fake):
    g_moved, d_moved, trainer = one_step(images, real, fake, balance_losses=False)
    assert g_moved and d_moved
    assert trainer.skip_shares() == {"skipped_d": 0.0, "skipped_g": 0.0}


def test_when_both_sides_would_skip_both_train(images):
    """Factors below 1 can make both conditions true at once (here d_loss ~ g_loss): the
    rule never stalls training."""
    g_moved, d_moved, trainer = one_step(images, 0.0, 0.0, balance_g_factor=0.1,
                                         balance_d_factor=0.1)
    assert g_moved and d_moved and trainer.balancer.decide(1.4, 0.7) == (True, True)
    assert trainer.skip_shares() == {"skipped_d": 0.0, "skipped_g": 0.0}


def test_a_checkpoint_with_the_rule_on_continues_identically(images, tmp_path):
    # factors of 1: every step one side (the one with the lower loss) skips
    config = dataclasses.replace(BASE, balance_g_factor=1.0, balance_d_factor=1.0)
    straight = GANTrainer(config, images, device="cpu")
    for _ in range(4):
        straight.train_step()
    straight.save_checkpoint(tmp_path / "ckpt.pt")
    expected = [straight.train_step() for _ in range(4)]
    restored = GANTrainer(config, images, device="cpu")
    restored.load_checkpoint(tmp_path / "ckpt.pt")
    again = [restored.train_step() for _ in range(4)]
    for a, b in zip(expected, again):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert restored.skip_shares() == straight.skip_shares()
    shares = straight.skip_shares()
    assert shares["skipped_d"] + shares["skipped_g"] == 1.0  # one side each step, none both


@pytest.mark.parametrize("value", ["0", "-1.5"])
@pytest.mark.parametrize("name", ["balance_g_factor", "balance_d_factor"])
def test_a_factor_that_is_not_positive_is_refused_in_one_line(name, value):
    with pytest.raises(ConfigError, match=rf"--set: {name}={float(value)!r} is invalid: "
                                          r"must lie in \(0, 100\]"):
        TrainConfig.from_dict({name: value}, source="--set")
