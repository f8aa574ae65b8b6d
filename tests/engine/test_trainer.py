"""GANTrainer: optimizers, learning, sampling, checkpoints and divergence on CPU."""

import math

import pytest
import torch
from PIL import Image

from gan_search.core.config import TrainConfig
from gan_search.engine.data import load_dataset
from gan_search.engine.trainer import GRID_SAMPLES, GANTrainer


def small(**changes) -> TrainConfig:
    base = dict(image_size=16, channels=1, z_dim=16, g_width=8, d_width=8, batch_size=32)
    return TrainConfig.from_dict({**base, **changes})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 16, 1).images


def test_optimizers_use_the_configured_lr_and_betas(digits):
    config = small(lr_g=1e-3, lr_d=3e-4, beta1=0.3, beta2=0.95)
    trainer = GANTrainer(config, digits)
    assert trainer.opt_g.param_groups[0]["lr"] == 1e-3
    assert trainer.opt_d.param_groups[0]["lr"] == 3e-4
    assert trainer.opt_g.param_groups[0]["betas"] == (0.3, 0.95)
    before_g = [p.detach().clone() for p in trainer.gen.parameters()]
    before_d = [p.detach().clone() for p in trainer.disc.parameters()]
    trainer.train_step()
    # Adam's first step moves each weight by lr * g / (|g| + eps), i.e. by lr where |g| >> eps:
    # the step size we see is the learning rate the trial was configured with.
    for before, module, lr in ((before_g, trainer.gen, 1e-3), (before_d, trainer.disc, 3e-4)):
        moves = torch.cat([(p.detach() - b).abs().flatten() for b, p in zip(before, module.parameters())])
        assert moves.median().item() == pytest.approx(lr, rel=0.05)
    # and its moment estimates use beta1 and beta2: m = (1 - beta1) g, v = (1 - beta2) g^2
    for param in trainer.gen.parameters():
        state = trainer.opt_g.state[param]
        assert torch.allclose(state["exp_avg"], (1 - 0.3) * param.grad, atol=1e-9)
        assert torch.allclose(state["exp_avg_sq"], (1 - 0.95) * param.grad ** 2, atol=1e-12)


def test_a_few_hundred_iterations_on_digits_learn(digits):
    """Generated digits move much closer to real ones: the mean distance from each
    sample to its nearest real image falls well below its value at iteration 0."""
    config = small(g_width=32, d_width=32, z_dim=32, lr_g=1e-3, lr_d=1e-3, batch_size=64)
    trainer = GANTrainer(config, digits)
    real = digits.float().flatten(1)

    def nearest_real_distance() -> float:
        fake = trainer.sample(300).float().flatten(1)
        return torch.cdist(fake, real).min(1).values.mean().item()

    start = nearest_real_distance()
    result = trainer.train(300)
    assert result.status == "finished" and result.step == 300
    end = nearest_real_distance()
    assert end < 0.6 * start, (start, end)  # seen: about 1390 -> 590
    # D is no longer certain: at the end it rates fakes well above zero
    assert result.history[-1]["d_fake"] > 0.1


def test_sample_grid_is_a_png_of_8_by_8_samples(tmp_path, digits):
    trainer = GANTrainer(small(), digits)
    path = trainer.save_grid(tmp_path / "grid.png")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (8 * (16 + 2) + 2, 8 * (16 + 2) + 2)  # make_grid pads by 2
    assert GRID_SAMPLES == 64


def test_same_seed_repeats_and_another_seed_differs(digits):
    losses = [GANTrainer(small(seed=s), digits).train(6, sync_every=1).history for s in (4, 4, 5)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


def test_resuming_from_a_checkpoint_gives_the_same_next_losses(tmp_path, digits):
    # dropout, uniform z, several D steps and smoothing all draw random numbers or state
    config = small(d_dropout=0.2, z_dist="uniform", d_steps=2, label_smoothing=0.1, seed=7)
    straight = GANTrainer(config, digits)
    straight.train(10, sync_every=1)
    straight.save_checkpoint(tmp_path / "ckpt.pt")
    expected = straight.train(25, sync_every=1).history

    resumed = GANTrainer(config.replace(seed=99), digits)  # different init, all replaced by the load
    resumed.load_checkpoint(tmp_path / "ckpt.pt")
    assert resumed.step == 10
    assert resumed.train(25, sync_every=1).history == expected
    assert torch.equal(resumed.sample(8, seed=1), straight.sample(8, seed=1))


def test_checkpoint_loads_with_weights_only(tmp_path, digits):
    trainer = GANTrainer(small(), digits)
    trainer.train(2)
    trainer.save_checkpoint(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["step"] == 2 and state["config"]["g_width"] == 8
    assert set(state) >= {"gen", "disc", "opt_g", "opt_d", "rng"}


def test_non_finite_losses_end_the_run_as_diverged(digits):
    trainer = GANTrainer(small(), digits)

    def poison(trainer, means):
        if means["step"] == 4:
            with torch.no_grad():
                next(trainer.gen.parameters()).fill_(float("nan"))

    result = trainer.train(20, sync_every=2, on_sync=poison)
    assert result.status == "diverged"
    assert result.step == 6 and "non-finite loss" in result.message
    assert math.isfinite(result.history[1]["loss_d"])


def test_on_sync_can_stop_early(digits):
    trainer = GANTrainer(small(), digits)
    result = trainer.train(50, sync_every=5, on_sync=lambda t, m: m["step"] >= 10)
    assert result.status == "finished" and result.step == 10


def test_sampling_in_train_mode_leaves_batch_norm_statistics_alone(digits):
    trainer = GANTrainer(small(sample_bn_mode="train"), digits)
    trainer.train(3)
    before = {k: v.clone() for k, v in trainer.gen.state_dict().items()}
    trainer.sample(64)
    after = trainer.gen.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert trainer.gen.training  # back to training mode


def test_eval_and_train_bn_modes_sample_differently(digits):
    trainer = GANTrainer(small(), digits)
    trainer.train(20)
    train_mode = trainer.sample(16, seed=1)
    trainer.config = trainer.config.replace(sample_bn_mode="eval")
    eval_mode = trainer.sample(16, seed=1)
    assert not torch.equal(train_mode, eval_mode)


def test_uniform_noise_lies_in_minus_one_to_one(digits):
    trainer = GANTrainer(small(z_dist="uniform"), digits)
    z = trainer._noise(1000, torch.Generator().manual_seed(0), "cpu")
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.9 and z.max() > 0.9


def test_dataset_lives_on_the_training_device(digits):
    trainer = GANTrainer(small(), digits, device="cpu")
    assert trainer.images.device == trainer.device and trainer.images.dtype == torch.uint8
    assert trainer._real_batch().shape == (32, 1, 16, 16)


def test_epochs_visit_every_image_once_before_repeating():
    images = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 1, 16, 16).contiguous()
    trainer = GANTrainer(small(batch_size=16), images)
    seen = torch.cat([trainer._real_batch()[:, 0, 0, 0] for _ in range(4)])
    values = ((seen + 1) * 127.5).round().long()
    assert sorted(values.tolist()) == list(range(64))


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_precision_setting_is_the_dtype_the_convolutions_run_in(digits, precision, dtype):
    trainer = GANTrainer(small(precision=precision), digits, device="cpu")
    seen = []
    for module in (trainer.gen.main[0], trainer.disc.main[0]):
        module.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    result = trainer.train(3)
    assert result.status == "finished" and seen and set(seen) == {dtype}


@pytest.mark.parametrize("bad,message", [
    (lambda d: d.float(), "uint8"),
    (lambda d: d[:, :, :8, :8], "the config asks"),
    (lambda d: d[:10], "batch_size=32 exceeds the 10 training images"),
])
def test_trainer_refuses_mismatched_images(digits, bad, message):
    with pytest.raises(ValueError, match=message):
        GANTrainer(small(), bad(digits))


def as_if_saved_on_cuda(state: dict) -> dict:
    """A checkpoint as a CUDA trainer writes it: its data generator is CUDA's Philox (a
    16-byte state that a CPU generator refuses), plus the CUDA global RNG state."""
    philox = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    return {**state, "device": "cuda", "rng": philox, "cuda_rng": philox.clone()}


def test_a_checkpoint_from_another_device_restores_and_continues(tmp_path, digits):
    """What Tune's retry on another node, or --resume on another machine, does: a checkpoint
    saved on CUDA restored on the CPU (the GPU suite checks CUDA <-> CPU for real)."""
    config = small(seed=3)
    saver = GANTrainer(config, digits)
    saver.train(6)
    torch.save(as_if_saved_on_cuda(saver.state_dict()), tmp_path / "cuda.pt")
    runs = []
    for _ in range(2):
        trainer = GANTrainer(config.replace(seed=11), digits, device="cpu")
        trainer.load_checkpoint(tmp_path / "cuda.pt")
        assert trainer.step == 6
        assert all(torch.equal(a, b) for a, b in zip(trainer.gen.state_dict().values(),
                                                      saver.gen.state_dict().values()))
        result = trainer.train(12, sync_every=2)
        assert result.status == "finished" and trainer.step == 12
        runs.append(result.history)
    assert runs[0] == runs[1]  # the stream that replaces CUDA's is the same on every restore



def test_auto_precision_follows_what_the_cpu_reports(tmp_path, digits, monkeypatch):
    from gan_search.engine import trainer as train

    flags = "flags\t\t: fpu sse2 avx2 avx512f {}\n"
    for extra, native in (("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("", False)):
        (tmp_path / "cpuinfo").write_text("processor\t: 0\n" + flags.format(extra))
        assert train.native_bf16_cpu.__wrapped__(str(tmp_path / "cpuinfo")) is native
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # oneDNN told to stay below bf16
    assert train.native_bf16_cpu.__wrapped__(str(tmp_path / "cpuinfo")) is False
    for native in (True, False):
        monkeypatch.setattr(train, "native_bf16_cpu", lambda native=native: native)
        trainer = GANTrainer(small(precision="auto"), digits, device="cpu")
        assert trainer.use_bf16 is native
        assert (trainer.memory_format == torch.channels_last) is native


def test_only_the_last_d_step_builds_a_graph_through_g(digits):
    trainer = GANTrainer(small(d_steps=3), digits)
    calls = []
    trainer.gen.register_forward_hook(lambda m, i, o: calls.append(o.requires_grad))
    trainer.train_step()
    assert calls == [False, False, True]


def test_a_compilation_that_fails_falls_back_to_eager_with_the_same_losses(digits, monkeypatch):
    def broken_compile(module):
        def call(*args):
            raise RuntimeError("no compiler here")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    eager = GANTrainer(small(compile="off", precision="fp32"), digits).train(4, sync_every=1)
    with pytest.warns(UserWarning, match="torch.compile failed .*training eager instead"):
        fallback = GANTrainer(small(compile="on", precision="fp32"), digits)
        result = fallback.train(4, sync_every=1)
    assert not fallback.compiled and result.history == eager.history


@pytest.mark.slow
def test_a_compiled_trainer_trains_like_the_eager_one(digits):
    """torch.compile for real (tens of seconds on a CPU): the losses stay close to eager."""
    eager = GANTrainer(small(compile="off", precision="fp32"), digits).train(10, sync_every=5)
    compiled = GANTrainer(small(compile="on", precision="fp32"), digits)
    result = compiled.train(10, sync_every=5)
    assert compiled.compiled and result.status == "finished"
    for mine, theirs in zip(result.history, eager.history):
        assert mine["loss_d"] == pytest.approx(theirs["loss_d"], rel=1e-3, abs=1e-4)


def test_a_copied_checkpoint_trains_on_with_the_settings_of_the_trainer_that_copied_it(
        tmp_path, digits):
    """PBT's exploit: a member loads a better member's checkpoint (weights, Adam's moments,
    step, data order) and trains on with its own, perturbed, settings: the optimiser settings
    saved in the checkpoint do not come back with it."""
    donor = GANTrainer(small(lr_g=2e-4, lr_d=2e-4, beta1=0.5), digits)
    donor.train(10, sync_every=5)
    donor.save_checkpoint(tmp_path / "donor.pt")
    fast, slow = (GANTrainer(small(lr_g=lr, lr_d=5e-4, beta1=0.3, beta2=0.99,
                                   label_smoothing=0.2, seed=5), digits) for lr in (1e-3, 2e-4))
    for member in (fast, slow):
        member.load_checkpoint(tmp_path / "donor.pt")
        assert member.step == 10 and member.real_target == pytest.approx(0.8)
        for mine, theirs in zip(member.gen.parameters(), donor.gen.parameters()):
            assert torch.equal(mine, theirs)
            assert torch.equal(member.opt_g.state[mine]["exp_avg"],
                               donor.opt_g.state[theirs]["exp_avg"])
        assert member.opt_d.param_groups[0]["lr"] == 5e-4
        assert member.opt_g.param_groups[0]["betas"] == (0.3, 0.99)
    before = [p.detach().clone() for p in fast.gen.parameters()]
    moves = []
    for member in (fast, slow):  # the same batch, noise and moments: only G's lr differs
        member.train_step()
        moves.append(torch.cat([(p.detach() - b).flatten()
                                for b, p in zip(before, member.gen.parameters())]))
    # a move is a difference of fp32 weights: it carries their rounding (|w| * 2**-24 each,
    # times 6 once one is scaled by 5), which tiny moves met on one machine
    rounding = 6 * 2.0 ** -24 * max(b.abs().max().item() for b in before)
    assert torch.allclose(moves[0], 5 * moves[1], rtol=1e-3, atol=rounding)


def test_retune_changes_the_settings_a_model_can_change_while_training_and_no_other(digits):
    trainer = GANTrainer(small(), digits)
    trainer.retune({"lr_d": 1e-3, "beta1": 0.1, "label_smoothing": 0.1, "d_steps": 2})
    assert trainer.opt_d.param_groups[0]["lr"] == 1e-3
    assert trainer.opt_g.param_groups[0]["betas"][0] == 0.1
    assert trainer.real_target == pytest.approx(0.9) and trainer.config.d_steps == 2
    with pytest.raises(ValueError, match="g_width cannot change while a model trains"):
        trainer.retune({"g_width": 16})
