"""GANTrainer: one trial's DCGAN training loop. Torch only: no ray, optuna or mlflow.

Design points, each for speed or for honest results:
- The whole uint8 dataset lives on the training device; batches are gathered there
  from an on-device permutation, so there is no host-to-device copy per step.
- Losses stay on the device; the host reads them only every ``sync_every`` steps
  (to check they are finite and to report them), not every step.
- ``precision: auto``: bf16 autocast and channels-last memory format on CUDA and on CPUs
  that run bf16 natively (AVX512-BF16 or AMX, as the CPU reports it), fp32 elsewhere
  (emulated bf16 is slower than fp32). On CUDA, fused Adam, and for long trials a compiled
  G and D (``compile: auto``; eager again, with a warning, if compilation fails).
- With ``d_steps > 1`` the fakes of all but the last D step are made without a graph.
- Every random draw (init, data order, noise, dropout) comes from seeded
  generators whose states are checkpointed, so a resumed CPU run continues with
  exactly the losses it would have had without stopping.
- Non-finite losses end the run with status "diverged" instead of a crash.
- ``balance_losses``: the faces tutorial's rule (balance.py) skips the stronger side's
  update; it reads the losses on the host each step, so it costs a sync per step when on.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from PIL import Image

from gan_search.core.config import TRAINING_SETTINGS, TrainConfig, check_batch_fits
from gan_search.core.errors import ConfigError
from gan_search.core.files import write_atomic
from gan_search.core.vocabulary import Status
from gan_search.engine.atomic import save_atomic
from gan_search.engine.balance import Balancer
from gan_search.engine.models import build_models

GRID_SAMPLES = 64  # fixed noise batch for sample grids, 8 x 8
# compile: auto compiles G and D on CUDA for trials of at least this many iterations; the
# compilation (tens of seconds) must pay for itself within the trial
COMPILE_MIN_ITERS = 2000
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_NO_BF16_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                 "AVX512_CORE_VNNI")


@functools.lru_cache(maxsize=None)
def native_bf16_cpu(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU reports native bf16 arithmetic (AVX512-BF16 or AMX-BF16) and
    oneDNN is not told to stay below it (ONEDNN_MAX_CPU_ISA)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in _NO_BF16_ISAS:
        return False
    try:
        text = Path(cpuinfo).read_text()
    except OSError:  # not Linux: no claim, fp32
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return any(flag in flags for flag in _BF16_FLAGS)


@dataclass
class TrainResult:
    """How a run ended: ``Status.FINISHED`` or ``Status.DIVERGED``."""

    status: Status
    step: int
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)


class GANTrainer:
    """Trains one DCGAN configuration on a uint8 image tensor.

    Args:
        config: the trial's settings.
        images: uint8 tensor (N, C, H, W) with H = W = config.image_size.
        device: "cpu", "cuda", "cuda:1"... or None for CUDA when available.
    """

    def __init__(self, config: TrainConfig, images: torch.Tensor,
                 device: str | torch.device | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} "
                             f"with shape {tuple(images.shape)}")
        expected = (config.channels, config.image_size, config.image_size)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(f"images have shape {tuple(images.shape[1:])} but the config asks "
                             f"for {expected}")
        check_batch_fits(config.batch_size, len(images))
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        cuda = self.device.type == "cuda"
        self.use_bf16 = config.precision == "bf16" or (
            config.precision == "auto" and (cuda or native_bf16_cpu()))
        # channels-last pays with bf16 kernels (and on CUDA); with fp32 on a CPU it is slower
        self.memory_format = torch.channels_last if cuda or self.use_bf16 else \
            torch.contiguous_format

        torch.manual_seed(config.seed)  # model init and dropout use the global generator
        gen, disc = build_models(config)
        self.gen = gen.to(self.device, memory_format=self.memory_format)
        self.disc = disc.to(self.device, memory_format=self.memory_format)
        # fused Adam on CUDA: one kernel per parameter group instead of several per tensor
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=config.lr_g,
                                      betas=(config.beta1, config.beta2), fused=cuda)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=config.lr_d,
                                      betas=(config.beta1, config.beta2), fused=cuda)
        self.compiled = config.compile == "on" or (
            config.compile == "auto" and cuda and config.iters >= COMPILE_MIN_ITERS)
        self._g, self._d = self.gen, self.disc  # what the step calls: compiled or not
        if self.compiled:
            self._g, self._d = torch.compile(self.gen), torch.compile(self.disc)
        self.images = images.to(self.device)
        self.rng = torch.Generator(self.device).manual_seed(config.seed + 1)
        self.perm = torch.randperm(len(images), device=self.device, generator=self.rng)
        self.cursor = 0
        self.step = 0
        # a fixed noise batch, drawn on the CPU so grids match across devices
        self.fixed_noise = self._noise(GRID_SAMPLES, torch.Generator().manual_seed(config.seed + 2),
                                       "cpu").to(self.device)
        self.real_target = 1.0 - config.label_smoothing  # one-sided label smoothing
        self.compiled_from = 0  # the step at which a compiled trainer compiles
        self.balancer = Balancer(config.balance_g_factor, config.balance_d_factor) \
            if config.balance_losses else None

    # ------------------------------------------------------------ batches and noise

    def _noise(self, n: int, generator: torch.Generator, device: str | torch.device) -> torch.Tensor:
        return draw_noise(n, self.config, generator, device)

    def _real_batch(self) -> torch.Tensor:
        """Next batch of the on-device epoch permutation, scaled to [-1, 1]."""
        size = self.config.batch_size
        if self.cursor + size > len(self.perm):  # drop the ragged tail, as DataLoader(drop_last)
            self.perm = torch.randperm(len(self.images), device=self.device, generator=self.rng)
            self.cursor = 0
        index = self.perm[self.cursor:self.cursor + size]
        self.cursor += size
        batch = self.images.index_select(0, index).to(memory_format=self.memory_format)
        return batch.float().div_(127.5).sub_(1.0)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.use_bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------ training

    def train_step(self) -> dict[str, torch.Tensor]:
        """d_steps discriminator updates then one generator update; losses stay on device.
        The first step of a compiled trainer compiles; if that fails, it goes on eager."""
        if self.compiled and self.step == self.compiled_from:
            return self._first_compiled_step()
        return self._step()

    def _first_compiled_step(self) -> dict[str, torch.Tensor]:
        saved = copy.deepcopy(self.state_dict())
        try:
            return self._step()
        except Exception as err:  # noqa: BLE001 - compilation is an optimisation, never a failure
            warnings.warn(f"torch.compile failed ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:200]}); training eager instead")
            self.compiled, self._g, self._d = False, self.gen, self.disc
            self.load_state_dict(saved)
            return self._step()

    def _step(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        train_d = train_g = True
        for d_step in range(cfg.d_steps):
            real = self._real_batch()
            z = self._noise(cfg.batch_size, self.rng, self.device)
            last = d_step == cfg.d_steps - 1  # only the last D step's fakes train G
            with self._autocast(), torch.set_grad_enabled(last):
                fake = self._g(z)
            with self._autocast():
                logits_real = self._d(real).float()
                logits_fake = self._d(fake.detach()).float()
            loss_d = F.binary_cross_entropy_with_logits(
                logits_real, torch.full_like(logits_real, self.real_target)) + \
                F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
            if d_step == 0 and self.balancer is not None:  # both losses before any update
                g_loss = F.binary_cross_entropy_with_logits(logits_fake.detach(),
                                                            torch.ones_like(logits_fake))
                train_d, train_g = self.balancer.decide(float(loss_d.detach()), float(g_loss))
            if train_d:
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()
        # generator: non-saturating loss on the last D step's fakes
        with self._autocast(), torch.set_grad_enabled(train_g):
            logits_gen = self._d(fake).float()
        loss_g = F.binary_cross_entropy_with_logits(logits_gen, torch.ones_like(logits_gen))
        if train_g:
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
        self.step += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(logits_real.detach()).mean(),
                "d_fake": torch.sigmoid(logits_fake.detach()).mean()}

    def train(self, iters: int | None = None, sync_every: int = 25,
              on_sync: Callable[["GANTrainer", dict[str, float]], bool | None] | None = None
              ) -> TrainResult:
        """Train until step == iters (default: config.iters) or divergence.

        Every ``sync_every`` steps (and at the end) the mean losses are read to the
        host, checked, kept in the history and passed to ``on_sync``, which may
        return True to stop early.
        """
        target = self.config.iters if iters is None else iters
        history: list[dict[str, float]] = []
        sums: dict[str, torch.Tensor] = {}
        count = 0
        while self.step < target:
            losses = self.train_step()
            for key, value in losses.items():
                sums[key] = sums[key] + value if key in sums else value.clone()
            count += 1
            if count == sync_every or self.step == target:
                means = {k: float(v) / count for k, v in sums.items()}
                means["step"] = self.step
                history.append(means)
                sums, count = {}, 0
                if not all(math.isfinite(v) for v in means.values()):
                    return TrainResult(Status.DIVERGED, self.step, "non-finite loss "
                                       f"(loss_d={means['loss_d']}, loss_g={means['loss_g']}) "
                                       f"by step {self.step}", history)
                if on_sync is not None and on_sync(self, means):
                    break
        return TrainResult(Status.FINISHED, self.step, "", history)

    def skip_shares(self) -> dict[str, float]:
        """The share of the steps so far in which D and G skipped their update (loss
        balancing; 0 when it is off): a rule that skips every step is a bug to see."""
        if self.balancer is None:
            return {"skipped_d": 0.0, "skipped_g": 0.0}
        return self.balancer.shares(self.step)

    # ------------------------------------------------------------ sampling

    @contextlib.contextmanager
    def _sampling_mode(self) -> Iterator[None]:
        """G in the configured batch-norm mode, without touching its running stats."""
        was_training = self.gen.training
        buffers = copy.deepcopy(dict(self.gen.named_buffers()))
        self.gen.train(self.config.sample_bn_mode == "train")
        try:
            with torch.no_grad(), self._autocast():
                yield
        finally:
            self.gen.train(was_training)
            for name, value in self.gen.named_buffers():
                value.copy_(buffers[name])

    def sample(self, n: int, seed: int | None = None, batch: int = 256) -> torch.Tensor:
        """n generated images as uint8 (n, C, H, W) on the CPU."""
        generator = torch.Generator(self.device).manual_seed(
            self.config.seed + 3 if seed is None else seed)
        out = []
        with self._sampling_mode():
            for start in range(0, n, batch):
                z = self._noise(min(batch, n - start), generator, self.device)
                out.append(to_uint8(self.gen(z).float()).cpu())
        return torch.cat(out)

    def save_grid(self, path: str | Path) -> Path:
        """The fixed-noise sample grid (8 x 8) as a PNG."""
        with self._sampling_mode():
            images = self.gen(self.fixed_noise).float().cpu()
        return save_grid(images, path, nrow=8)

    # ------------------------------------------------------------ settings that change

    def retune(self, values: Mapping[str, Any]) -> None:
        """Train on with new values of the settings that may change while a model trains
        (``TRAINING_SETTINGS``: the learning rates, betas, label smoothing, D steps), as a
        replayed PBT schedule does; any other setting raises ValueError."""
        fixed = sorted(set(values) - set(TRAINING_SETTINGS))
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change while a model trains; only "
                             f"{', '.join(TRAINING_SETTINGS)} can")
        if all(getattr(self.config, k) == v for k, v in values.items()):
            return  # nothing changes (a schedule between its changes)
        self.config = TrainConfig.from_dict({**self.config.to_dict(), **values}, source="retune")
        self._apply_training_settings()

    def reseed(self, salt: int) -> None:
        """Draw batches, noise and dropout from a stream of this seed and ``salt`` from now
        on (a PBT member that copied another's checkpoint, random states included)."""
        self.rng.manual_seed(self.config.seed + 1 + salt)
        torch.manual_seed(self.config.seed + salt)

    def _apply_training_settings(self) -> None:
        cfg = self.config
        for opt, lr in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr, (cfg.beta1, cfg.beta2)
        self.real_target = 1.0 - cfg.label_smoothing  # d_steps is read at every step

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        state = {
            "config": self.config.to_dict(),
            "step": self.step,
            "device": self.device.type,  # whose generator format "rng" is (cpu or cuda)
            "gen": self.gen.state_dict(), "disc": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(), "perm": self.perm.cpu(), "cursor": self.cursor,
            "torch_rng": torch.get_rng_state(),
        }
        if self.balancer is not None:
            state["balance"] = self.balancer.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint made on any device: tensors move to this trainer's device;
        random states continue exactly where the saving device type matches this one."""
        self.gen.load_state_dict(state["gen"])
        self.disc.load_state_dict(state["disc"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        # the optimisers' saved settings give way to this trainer's: a PBT member that copies
        # another's checkpoint trains on with its own (perturbed) learning rates and betas
        self._apply_training_settings()
        self.perm = state["perm"].to(self.device)
        self.cursor = int(state["cursor"])
        self.step = self.compiled_from = int(state["step"])
        if self.balancer is not None and "balance" in state:
            self.balancer.load_state_dict(state["balance"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if _saved_on(state) == self.device.type:
            self.rng.set_state(state["rng"].cpu())  # generator states are CPU ByteTensors
            if "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        else:
            # a CPU generator's state does not fit a CUDA one (and back): continue with a
            # stream derived from the seed and the step, the same on every such restore
            self.rng.manual_seed(self.config.seed + 1 + 1_000_003 * self.step)

    def save_checkpoint(self, path: str | Path) -> Path:
        """Save G, D, both optimizers, the step and RNG states (atomically)."""
        path = Path(path)
        save_atomic(path, self.state_dict())
        return path

    def save_generator(self, path: str | Path) -> Path:
        """G alone (weights, config, step), loadable with weights_only=True: what
        `gan-search sample` needs, a fraction of the full checkpoint."""
        path = Path(path)
        gen = {k: v.cpu() for k, v in self.gen.state_dict().items()}
        save_atomic(path, {"gen": gen, "config": self.config.to_dict(), "step": self.step})
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        # read onto the CPU: RNG states must stay CPU ByteTensors, and load_state_dict moves
        # weights and optimizer moments to this trainer's device, whichever device saved them
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def _saved_on(state: dict) -> str:
    """The device type a checkpoint was saved on (older checkpoints: by the size of the
    generator state, 16 bytes for CUDA's Philox, thousands for the CPU's Mersenne twister)."""
    return state.get("device") or ("cuda" if state["rng"].numel() <= 16 else "cpu")


def draw_noise(n: int, config: TrainConfig, generator: torch.Generator,
               device: str | torch.device) -> torch.Tensor:
    """z for n samples: N(0, 1), or uniform in [-1, 1] when config.z_dist is uniform."""
    shape = (n, config.z_dim)
    if config.z_dist == "uniform":
        return torch.rand(shape, generator=generator, device=device) * 2 - 1
    return torch.randn(shape, generator=generator, device=device)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int) -> Path:
    """Generator output in [-1, 1] as a PNG grid (make_grid's 2-pixel padding)."""
    path = Path(path)
    grid = grid_image(images, nrow)
    write_atomic(path, lambda tmp: grid.save(tmp))
    return path


def grid_image(images: torch.Tensor, nrow: int, padding: int = 2) -> Image.Image:
    """Images in [-1, 1] (N, C, H, W) tiled nrow to a row with black 2-pixel borders, as
    torchvision's make_grid draws them (without importing torchvision: a second a process)."""
    n, channels, height, width = images.shape
    rows = math.ceil(n / nrow)
    canvas = torch.zeros(3, rows * (height + padding) + padding, nrow * (width + padding) + padding,
                         dtype=torch.uint8)
    tiles = to_uint8(images.detach().float().cpu()).expand(-1, 3, -1, -1)
    for i, tile in enumerate(tiles):
        top, left = padding + (i // nrow) * (height + padding), padding + (i % nrow) * (width + padding)
        canvas[:, top:top + height, left:left + width] = tile
    return Image.fromarray(canvas.permute(1, 2, 0).numpy())


def generate(gen: torch.nn.Module, config: TrainConfig, n: int, seed: int = 0,
             batch: int = 256) -> torch.Tensor:
    """n uint8 images (n, C, H, W) from a loaded generator (``models.load_generator``), its
    noise drawn from ``seed``, in batches of ``batch`` (as a trainer samples)."""
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([to_uint8(gen(draw_noise(min(batch, n - start), config, noise, "cpu")))
                          for start in range(0, n, batch)])


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 in [0, 255]."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def train_device(device: str, cuda: bool) -> str:
    """``--device`` of ``train``: auto (CUDA when present), cpu, gpu, or a CUDA device name."""
    if device == "auto":
        return "cuda" if cuda else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "gpu" or device == "cuda" or device.startswith("cuda:"):
        if not cuda:
            raise ConfigError(f"--device {device}: no CUDA GPU is visible here; use --device cpu "
                              "or auto")
        return "cuda" if device == "gpu" else device
    raise ConfigError(f"--device {device}: expected auto, cpu, gpu or cuda:N")
