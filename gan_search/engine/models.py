"""DCGAN generator and discriminator (Radford et al. 2016), built per trial.

Every size-dependent choice is an explicit argument, so each trial can vary it.
Image sizes are not limited to powers of two: the generator projects z to a
BASE x BASE map (BASE in 4..7, see ``config.size_plan``) and doubles it
``doublings`` times; the discriminator mirrors that path back down.

Shape comments use g = g_width, d = d_width, B = base, S = image_size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gan_search.core.config import TrainConfig, size_plan


def _up_conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.ConvTranspose2d:
    """A transposed conv that exactly doubles height and width for kernel 4 or 5."""
    # out = (in - 1) * 2 - 2 * padding + kernel + output_padding = 2 * in
    if kernel_size == 4:
        return nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False)
    return nn.ConvTranspose2d(in_ch, out_ch, 5, 2, 2, output_padding=1, bias=False)


def _down_conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.Conv2d:
    """A strided conv that exactly halves an even height and width for kernel 4 or 5."""
    # out = floor((in + 2 * padding - kernel) / 2) + 1 = in / 2 for even in
    padding = 1 if kernel_size == 4 else 2
    return nn.Conv2d(in_ch, out_ch, kernel_size, 2, padding, bias=False)


class Generator(nn.Module):
    """z (N, z_dim) -> images (N, channels, S, S) in [-1, 1]."""

    def __init__(self, image_size: int, channels: int, z_dim: int, width: int,
                 kernel_size: int = 4, batch_norm: bool = True):
        super().__init__()
        base, doublings = size_plan(image_size)
        self.z_dim = z_dim
        ch = width * 2 ** (doublings - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ch, base, 1, 0, bias=False),
            nn.BatchNorm2d(ch) if batch_norm else nn.Identity(),
            nn.ReLU(True),
        ]  # state size. (g * 2**(doublings-1)) x B x B
        for _ in range(doublings - 1):
            layers += [_up_conv(ch, ch // 2, kernel_size),
                       nn.BatchNorm2d(ch // 2) if batch_norm else nn.Identity(),
                       nn.ReLU(True)]
            ch //= 2  # state size. (ch) x 2H x 2W, ending at g x S/2 x S/2
        layers += [_up_conv(ch, channels, kernel_size), nn.Tanh()]
        # state size. (channels) x S x S
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """images (N, channels, S, S) -> logits (N,); higher means 'real'."""

    def __init__(self, image_size: int, channels: int, width: int, kernel_size: int = 4,
                 leaky_slope: float = 0.2, dropout: float = 0.0, batch_norm: bool = True):
        super().__init__()
        base, doublings = size_plan(image_size)
        # no batch norm on the first block, as in the DCGAN paper
        layers: list[nn.Module] = [_down_conv(channels, width, kernel_size),
                                   nn.LeakyReLU(leaky_slope, True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        ch = width  # state size. d x S/2 x S/2
        for _ in range(doublings - 1):
            layers += [_down_conv(ch, ch * 2, kernel_size),
                       nn.BatchNorm2d(ch * 2) if batch_norm else nn.Identity(),
                       nn.LeakyReLU(leaky_slope, True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            ch *= 2  # state size. (ch) x H/2 x W/2, ending at (d * 2**(doublings-1)) x B x B
        layers.append(nn.Conv2d(ch, 1, base, 1, 0, bias=False))  # state size. 1 x 1 x 1
        self.main = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).flatten()


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); batch-norm scale ~ N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(config: TrainConfig) -> tuple[Generator, Discriminator]:
    """G and D for a trial config, DCGAN-initialised (uses the global torch RNG)."""
    gen = Generator(config.image_size, config.channels, config.z_dim, config.g_width,
                    config.kernel_size, config.batch_norm)
    disc = Discriminator(config.image_size, config.channels, config.d_width, config.kernel_size,
                         config.leaky_slope, config.d_dropout, config.batch_norm)
    gen.apply(init_weights)
    disc.apply(init_weights)
    return gen, disc


def load_generator(path: str | Path) -> tuple[Generator, TrainConfig, int]:
    """A generator file (``GANTrainer.save_generator``'s: weights, config, step) as the
    network ready to sample (on the CPU, its batch norm in the mode ``sample_bn_mode``
    says), its TrainConfig and the step it was saved at."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(state["config"])
    gen = Generator(config.image_size, config.channels, config.z_dim, config.g_width,
                    config.kernel_size, config.batch_norm)
    gen.load_state_dict(state["gen"])
    gen.train(config.sample_bn_mode == "train")
    return gen, config, int(state.get("step", 0))
