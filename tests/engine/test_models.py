import pytest
import torch

from gan_search.core.config import TrainConfig, size_plan
from gan_search.core.errors import ConfigError
from gan_search.engine.models import Discriminator, Generator, build_models

SIZES = [16, 28, 32, 40, 64, 128]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kernel_size", [4, 5])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes_and_gradients(size, kernel_size, channels):
    gen = Generator(size, channels, z_dim=8, width=4, kernel_size=kernel_size)
    disc = Discriminator(size, channels, width=4, kernel_size=kernel_size, dropout=0.1)
    z = torch.randn(3, 8)
    images = gen(z)
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    logits = disc(images)
    assert logits.shape == (3,)
    logits.sum().backward()
    for module in (gen, disc):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("size,plan", [(16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (40, (5, 3)),
                                       (64, (4, 4)), (128, (4, 5)), (48, (6, 3)), (8, (4, 1))])
def test_size_plan_starts_from_a_4_to_7_base(size, plan):
    assert size_plan(size) == plan


@pytest.mark.parametrize("size", [30, 36, 7, 4, 100, 17])
def test_sizes_the_models_cannot_make_are_refused_with_alternatives(size):
    with pytest.raises(ConfigError, match=f"image_size={size} cannot be made"):
        size_plan(size)


def test_batch_norm_off_has_no_batch_norm_layers():
    gen = Generator(32, 3, 8, 4, batch_norm=False)
    disc = Discriminator(32, 3, 4, batch_norm=False)
    for module in (gen, disc):
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())


def test_dcgan_weight_init_is_normal_with_std_002():
    torch.manual_seed(0)
    gen, disc = build_models(TrainConfig(image_size=64, channels=3, g_width=32, d_width=32))
    convs = [m.weight for m in [*gen.modules(), *disc.modules()]
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    weights = torch.cat([w.flatten() for w in convs])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    bns = [m for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.all(m.bias == 0) for m in bns)
    assert torch.cat([m.weight for m in bns]).mean().item() == pytest.approx(1.0, abs=0.01)


def test_widths_follow_the_dcgan_pattern_at_64px():
    gen = Generator(64, 3, 100, 64)
    convs = [m for m in gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    # 100 -> g*8 (4x4) -> g*4 (8x8) -> g*2 (16x16) -> g (32x32) -> 3 (64x64), as in the paper
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]
