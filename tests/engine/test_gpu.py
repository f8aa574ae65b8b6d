"""The GPU suite (`python -m pytest -m gpu`): the CUDA path of the engine, with torch only
(no Ray, MLflow or Optuna), so it runs on any machine with a CUDA GPU. Deselected by
default; selected on a machine without a GPU, every test skips with the reason."""

import subprocess
import sys
import textwrap

import pytest
import torch

from gan_search.core.config import TrainConfig
from gan_search.engine.data import load_dataset
from gan_search.engine.metrics import Evaluator
from gan_search.engine.trainer import GANTrainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def config(**changes) -> TrainConfig:
    base = dict(image_size=32, channels=1, z_dim=32, g_width=32, d_width=32, batch_size=64,
                iters=200, eval_every=100)
    return TrainConfig.from_dict({**base, **changes})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 32, 1).images


def test_auto_precision_trains_in_bf16_and_channels_last_on_cuda(digits):
    trainer = GANTrainer(config(), digits, device="cuda")
    assert trainer.use_bf16 and trainer.memory_format == torch.channels_last
    seen = {}
    first_conv = trainer.disc.main[0]
    first_conv.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype,
                                                                  last=o.is_contiguous(
                                                                      memory_format=torch.channels_last)))
    losses = trainer.train_step()
    assert seen == {"dtype": torch.bfloat16, "last": True}
    assert all(v.device.type == "cuda" and torch.isfinite(v) for v in losses.values())
    result = trainer.train(100)
    assert result.status == "finished" and trainer.step == 100


def test_save_then_restore_on_cuda_gives_identical_next_losses(tmp_path, digits):
    cfg = config(d_dropout=0.2, z_dist="uniform", d_steps=2, label_smoothing=0.1, seed=5,
                 precision="fp32")
    straight = GANTrainer(cfg, digits, device="cuda")
    straight.train(20, sync_every=1)
    straight.save_checkpoint(tmp_path / "c.pt")
    expected = straight.train(40, sync_every=1).history
    resumed = GANTrainer(cfg.replace(seed=77), digits, device="cuda")
    resumed.load_checkpoint(tmp_path / "c.pt")
    assert resumed.train(40, sync_every=1).history == expected


@pytest.mark.parametrize("saved_on,restored_on", [("cpu", "cuda"), ("cuda", "cpu")])
def test_checkpoints_move_between_cpu_and_cuda(tmp_path, digits, saved_on, restored_on):
    cfg = config(precision="fp32", seed=2)
    saver = GANTrainer(cfg, digits, device=saved_on)
    saver.train(10)
    saver.save_checkpoint(tmp_path / "c.pt")
    trainer = GANTrainer(cfg, digits, device=restored_on)
    trainer.load_checkpoint(tmp_path / "c.pt")
    assert trainer.step == 10
    for mine, theirs in zip(trainer.gen.state_dict().values(), saver.gen.state_dict().values()):
        assert mine.device.type == restored_on and torch.equal(mine.cpu(), theirs.cpu())
    result = trainer.train(30)
    assert result.status == "finished" and trainer.step == 30
    state = next(iter(trainer.opt_g.state.values()))
    assert state["exp_avg"].device.type == restored_on


def test_evaluation_and_sampling_on_cuda_match_the_cpu(digits):
    data = load_dataset("digits", 32, 1)
    trainer = GANTrainer(config(precision="fp32"), digits, device="cuda")
    trainer.train(50)
    images = trainer.sample(600)  # FID-lite compares 2 x N generated images
    assert images.dtype == torch.uint8 and images.device.type == "cpu"
    assert images.shape == (600, 1, 32, 32)
    on_gpu = Evaluator(data, n=300, device="cuda").score(images)
    on_cpu = Evaluator(data, n=300, device="cpu").score(images)
    assert on_gpu["fid_lite"] == pytest.approx(on_cpu["fid_lite"], rel=1e-3)
    assert on_gpu["coverage"] == pytest.approx(on_cpu["coverage"], abs=0.02)


WORKER = textwrap.dedent("""
    import json, sys, torch
    from gan_search.core.config import TrainConfig
    from gan_search.engine.data import load_dataset
    from gan_search.engine.trainer import GANTrainer
    config = TrainConfig(image_size=32, channels=1, z_dim=32, g_width=32, d_width=32,
                         batch_size=64, seed=int(sys.argv[1]))
    trainer = GANTrainer(config, load_dataset("digits", 32, 1).images, device="cuda")
    result = trainer.train(300)
    torch.cuda.synchronize()
    print(json.dumps({"status": result.status, "step": result.step,
                      "peak_mib": torch.cuda.max_memory_allocated() / 2**20}))
""")


def test_four_trainers_in_separate_processes_share_one_gpu(tmp_path):
    """What a fractional `resources.gpu` does: several trial processes on one GPU."""
    load_dataset("digits", 32, 1)  # decode once, so the workers read the cache
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(seed)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in range(4)]
    outputs = [p.communicate(timeout=600) for p in procs]
    import json

    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["status"] == "finished" and report["step"] == 300
        print(f"trainer peak GPU memory: {report['peak_mib']:.0f} MiB")


def test_a_compiled_step_with_fused_adam_trains_on_cuda(digits):
    trainer = GANTrainer(config(compile="on"), digits, device="cuda")
    assert trainer.opt_g.defaults["fused"] and trainer.opt_d.defaults["fused"]
    result = trainer.train(100)
    assert trainer.compiled, "compilation fell back to eager"
    assert result.status == "finished" and trainer.step == 100
