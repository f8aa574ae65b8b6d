"""The image disturbances of the FID paper (Heusel et al. 2017, Fig. 1 and appendix):
Gaussian noise, Gaussian blur, black rectangles, salt-and-pepper noise and a swirl.
Each maps uint8 images (N, C, H, W) and a strength to disturbed uint8 images;
strength 0 returns the images unchanged. Deterministic (fixed seeds)."""

import numpy as np
import torch
import torch.nn.functional as F


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def gaussian_noise(images, sigma):
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)) * sigma
    return _u8(images.float() + noise)


def gaussian_blur(images, sigma):
    if sigma == 0:
        return images
    radius = max(1, int(round(3 * sigma)))
    taps = torch.arange(-radius, radius + 1).float()
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    x = F.pad(images.float(), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return _u8(x)


def black_rectangles(images, fraction):
    """Two black squares per image, each side = fraction of the image side."""
    if fraction == 0:
        return images
    out = images.clone()
    size = images.shape[-1]
    side = max(1, int(round(fraction * size)))
    rng = np.random.RandomState(2)
    for i in range(len(out)):
        for _ in range(2):
            top, left = rng.randint(0, size - side + 1, 2)
            out[i, :, top:top + side, left:left + side] = 0
    return out


def salt_and_pepper(images, fraction):
    """A fraction of pixels set to black or white (half each)."""
    u = torch.rand((images.shape[0], 1, *images.shape[2:]), generator=torch.Generator().manual_seed(3))
    u = u.expand_as(images)
    out = images.clone()
    out[u < fraction / 2] = 0
    out[(u >= fraction / 2) & (u < fraction)] = 255
    return out


def swirl(images, strength):
    """Rotate each pixel about the centre by strength * exp(-r / 0.5) radians."""
    if strength == 0:
        return images
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    radius = torch.sqrt(xs ** 2 + ys ** 2)
    angle = torch.atan2(ys, xs) + strength * torch.exp(-radius / 0.5)
    grid = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
    warped = F.grid_sample(images.float(), grid[None].expand(n, -1, -1, -1),
                           align_corners=True, padding_mode="zeros")
    return _u8(warped)


# four increasing strengths for each (0 is the undisturbed baseline)
DISTURBANCES = {
    "gaussian_noise": (gaussian_noise, [8, 16, 32, 64]),
    "gaussian_blur": (gaussian_blur, [0.5, 1.0, 1.5, 2.5]),
    "black_rectangles": (black_rectangles, [0.1, 0.2, 0.3, 0.45]),
    "salt_and_pepper": (salt_and_pepper, [0.01, 0.03, 0.1, 0.25]),
    "swirl": (swirl, [1, 2, 4, 8]),
}
