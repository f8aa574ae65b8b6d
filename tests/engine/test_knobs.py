"""Every knob a space can search reaches the trainer, and reaches the right place.

A search over a setting the trainer silently ignores wastes every trial spent on it, and one
whose value lands on another setting (lr_g used for D) misleads the study. Two kinds of test:
- ignored: for each setting, two trainers that differ only in it train apart (a generic
  check over every searchable setting, so a new setting is covered the day it is added);
- swapped: for the settings that come in pairs or feed a formula, the exact place the value
  must show: each network's first Adam step is its own learning rate, both optimisers'
  moments follow (beta1, beta2), D's loss targets are 1 - label_smoothing and 0 on a batch
  of batch_size, G's target stays 1, the built widths, kernels, slopes and dropout.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from gan_search.core.config import TrainConfig
from gan_search.core.settings import SharedSettings, TrialSettings
from gan_search.engine.data import load_dataset
from gan_search.engine.models import build_models
from gan_search.engine.trainer import GANTrainer, draw_noise

BASE = TrainConfig.from_dict({"image_size": 16, "channels": 3, "z_dim": 8, "g_width": 8,
                              "d_width": 8, "batch_size": 16, "precision": "fp32",
                              "compile": "off", "iters": 10, "eval_every": 10})
# (setting, another value than BASE's): what a search may vary
VARIED = {"z_dim": 12, "z_dist": "uniform", "g_width": 12, "d_width": 12, "kernel_size": 5,
          "leaky_slope": 0.05, "d_dropout": 0.3, "batch_norm": False, "lr_g": 1e-3,
          "lr_d": 1e-3, "beta1": 0.1, "beta2": 0.9, "label_smoothing": 0.2, "batch_size": 24,
          "d_steps": 2, "sample_bn_mode": "eval", "seed": 5, "precision": "bf16"}
# settings that do not change how one training step goes: what they steer is checked by
# the tests named here
ELSEWHERE = {"image_size": "test_output_geometry_follows_image_size_and_channels",
             "channels": "test_output_geometry_follows_image_size_and_channels",
             "iters": "test_trainer.py::test_on_sync_can_stop_early and the search tests",
             "eval_every": "test_search.py (best_step at each evaluation)",
             "compile": "test_trainer.py::test_a_compiled_trainer_trains_like_the_eager_one",
             # the balancing rule only acts when the losses are far apart; it is arranged so
             "balance_losses": "test_balance.py (each side skips when far stronger; off: never)",
             "balance_g_factor": "test_balance.py (G skips when g_loss * factor < d_loss)",
             "balance_d_factor": "test_balance.py (D skips when d_loss * factor < g_loss)"}


@pytest.fixture(scope="module")
def images():
    return load_dataset("fake", 16, 3, {"n": 96, "classes": 4}).images


def trainer(images, **changes):
    return GANTrainer(dataclasses.replace(BASE, **changes), images, device="cpu")


def fingerprint(trainer: GANTrainer, steps: int = 2) -> list[torch.Tensor]:
    losses = [trainer.train_step() for _ in range(steps)]
    return [*[torch.stack(list(step.values())) for step in losses], trainer.sample(8).float()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


def test_every_searchable_setting_is_varied_here_or_checked_elsewhere():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(VARIED) | set(ELSEWHERE) == names, names ^ (set(VARIED) | set(ELSEWHERE))


@pytest.mark.parametrize("name", sorted(VARIED))
def test_a_setting_the_trainer_ignored_would_train_the_same(images, name):
    assert same(fingerprint(trainer(images)), fingerprint(trainer(images)))  # repeatable
    assert not same(fingerprint(trainer(images)), fingerprint(trainer(images, **{name: VARIED[name]}))), \
        f"changing {name} changed nothing the trainer does"


@pytest.mark.parametrize("name", sorted(f.name for f in dataclasses.fields(TrainConfig)))
def test_a_trials_own_value_reaches_its_train_config(name):
    """The trial's sampled value wins over the search's shared base, for every setting."""
    value = VARIED.get(name, getattr(BASE, name))
    base = {**BASE.to_dict(), "iters": 20, "eval_every": 10}
    config = TrialSettings.of({name: value}).train_config(SharedSettings(base=base))
    assert getattr(config, name) == value
    assert {k: v for k, v in config.to_dict().items() if k != name} == \
        {k: v for k, v in base.items() if k != name}


def parameters(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def test_each_network_takes_a_first_adam_step_of_its_own_learning_rate(images):
    """Adam's first update is lr * g / (|g| + eps): about lr for every weight with a
    gradient, so each network's median change is its own learning rate."""
    t = trainer(images, lr_g=1e-3, lr_d=3e-4)
    g0, d0 = parameters(t.gen), parameters(t.disc)
    t.train_step()
    g_step = (parameters(t.gen) - g0).abs()
    d_step = (parameters(t.disc) - d0).abs()
    assert g_step[g_step > 0].median().item() == pytest.approx(1e-3, rel=0.02)
    assert d_step[d_step > 0].median().item() == pytest.approx(3e-4, rel=0.02)


def test_both_optimisers_keep_their_moments_with_beta1_and_beta2(images):
    """After one step Adam holds m = (1 - beta1) g and v = (1 - beta2) g^2, so m^2 / v is
    (1 - beta1)^2 / (1 - beta2) for every weight: 0.49 / 0.1 here, 0.01 / 0.7 if swapped."""
    t = trainer(images, beta1=0.3, beta2=0.9)
    t.train_step()
    for optimiser in (t.opt_g, t.opt_d):
        states = [optimiser.state[p] for group in optimiser.param_groups for p in group["params"]]
        m = torch.cat([s["exp_avg"].flatten() for s in states])
        v = torch.cat([s["exp_avg_sq"].flatten() for s in states])
        ratio = (m[v > 1e-20] ** 2 / v[v > 1e-20]).median().item()
        assert ratio == pytest.approx(0.7 ** 2 / 0.1, rel=1e-3)


def test_d_steps_discriminator_updates_per_generator_update(images):
    t = trainer(images, d_steps=3)
    t.train_step()
    step_of = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
    assert step_of(t.opt_d) == 3 and step_of(t.opt_g) == 1


def test_d_learns_real_as_one_minus_label_smoothing_on_a_batch_of_batch_size(images):
    """The first step's losses recomputed by hand from the same batch and noise: D's real
    target is 1 - label_smoothing (one-sided), its fake target 0, G's target 1, and a batch
    holds batch_size real images and batch_size noise vectors of z_dim from z_dist."""
    t = trainer(images, label_smoothing=0.3, batch_size=24, z_dist="uniform", z_dim=6)
    rng, cursor = t.rng.get_state(), t.cursor
    real = t._real_batch()
    z = draw_noise(24, t.config, t.rng, "cpu")
    t.rng.set_state(rng)
    t.cursor = cursor
    assert real.shape[0] == 24 and z.shape == (24, 6) and z.abs().max() <= 1
    with torch.no_grad():
        fake = t.gen(z)
        logits_real, logits_fake = t.disc(real), t.disc(fake)
    expected_d = F.binary_cross_entropy_with_logits(logits_real, torch.full_like(logits_real, 0.7)) \
        + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    losses = t.train_step()
    assert losses["loss_d"].item() == pytest.approx(expected_d.item(), rel=1e-5)
    with torch.no_grad():
        logits_gen = t.disc(fake)  # D after its update, on the same fakes
    expected_g = F.binary_cross_entropy_with_logits(logits_gen, torch.ones_like(logits_gen))
    assert losses["loss_g"].item() == pytest.approx(expected_g.item(), rel=1e-4)


def test_the_built_models_carry_each_architecture_setting_in_its_place():
    config = dataclasses.replace(BASE, g_width=12, d_width=20, kernel_size=5, z_dim=7,
                                 leaky_slope=0.15, d_dropout=0.25)
    gen, disc = build_models(config)
    up = [m for m in gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    down = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert up[0].in_channels == 7 and up[-1].in_channels == 12  # z, then G's last width
    assert down[0].out_channels == 20  # D's first width
    assert {m.kernel_size[0] for m in up[1:]} == {5} and {m.kernel_size[0] for m in down[:-1]} == {5}
    slopes = {m.negative_slope for m in disc.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.15} and not any(isinstance(m, torch.nn.LeakyReLU) for m in gen.modules())
    drops = {m.p for m in disc.modules() if isinstance(m, torch.nn.Dropout2d | torch.nn.Dropout)}
    assert drops == {0.25} and not any(isinstance(m, torch.nn.Dropout | torch.nn.Dropout2d)
                                       for m in gen.modules())


def test_output_geometry_follows_image_size_and_channels():
    gen, disc = build_models(dataclasses.replace(BASE, image_size=20, channels=1))
    out = gen(torch.randn(2, BASE.z_dim, 1, 1))
    assert out.shape == (2, 1, 20, 20) and disc(out).numel() == 2


def test_the_shared_knobs_act_on_both_networks(images):
    """A setting both networks take must reach each of them: batch norm kept in G while D
    drops it (or the reverse) would still change a training step, and the generic check
    above would pass. Each side is looked at on its own."""
    bn = lambda net: any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # noqa: E731
    with_bn, without = build_models(BASE), build_models(dataclasses.replace(BASE, batch_norm=False))
    assert [bn(net) for net in with_bn] == [True, True] and [bn(n) for n in without] == [False, False]
    for kernel in (4, 5):  # every up and down convolution but the fixed 1-pixel ends
        gen, disc = build_models(dataclasses.replace(BASE, kernel_size=kernel))
        ups = [m.kernel_size[0] for m in gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
        downs = [m.kernel_size[0] for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
        assert set(ups[1:]) == {kernel} and set(downs[:-1]) == {kernel}
    one, two = trainer(images, seed=1), trainer(images, seed=2)  # the seed starts both
    for a, b in ((one.gen, two.gen), (one.disc, two.disc)):
        assert not torch.equal(next(a.parameters()), next(b.parameters()))
