"""The faces tutorial's loss balancing, measured: the `faces` space's baseline (the tutorial's
configuration) trained with and without it, same fresh seeds, same iterations, on a folder
of real photographs, scored by FID-lite against the folder's held-out images.

The folder is made here from the photographs that installed packages ship (scikit-learn's
sample images and matplotlib's Grace Hopper portrait): random square crops of 96 to 256
pixels, resized to the space's 40 px. It goes through the real `folder` source.

    python benchmarks/balance.py [--iters 600] [--every 200] [--seeds 3] [--images 1500]
"""

from __future__ import annotations

import argparse
import os
import sys
import math
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from gan_search.core.config import TrainConfig, config_from_space
from gan_search.core.space import load_space
from gan_search.engine.data import load_splits
from gan_search.engine.metrics import Evaluator
from gan_search.engine.trainer import GANTrainer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from report_md import cpu_model, write_report  # noqa: E402
FRESH_SEEDS = 1001  # the confirmation's fresh seeds: 1001, 1002, ...


def shipped_photos() -> list[Path]:
    import matplotlib
    import sklearn

    sample = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return [*sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg")), sample]


def make_folder(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """``count`` random square crops of the shipped photographs, ``size`` px, as PNGs."""
    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in shipped_photos()]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(96, min(257, *photo.size)))
        left = int(rng.integers(0, photo.size[0] - side + 1))
        top = int(rng.integers(0, photo.size[1] - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        crop.save(folder / f"crop_{i:05d}.png")
    return folder


def baseline_config(iters: int, every: int) -> TrainConfig:
    spec = load_space("faces")
    values = {**spec.baseline.values, "iters": iters, "eval_every": every, "compile": "off"}
    return config_from_space(spec, sampled=values)


def best_fid(config: TrainConfig, images, evaluator: Evaluator) -> tuple[float, dict]:
    trainer, best = GANTrainer(config, images, device="cpu"), math.inf
    while trainer.step < config.iters:
        result = trainer.train(min(config.iters, trainer.step + config.eval_every))
        if result.status != "finished":
            return math.inf, trainer.skip_shares()
        best = min(best, evaluator.score(trainer.sample(evaluator.generated))["fid_lite"])
    return best, trainer.skip_shares()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cpu-vm-balance")
    args = parser.parse_args()
    base = baseline_config(args.iters, args.every)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "photos", args.images, base.image_size)
        splits = load_splits("folder", base.image_size, 3, {"path": str(folder)}, args.images // 4)
        evaluator = Evaluator.for_splits(splits, len(splits.reference.images))
        runs: dict[str, list] = {"off": [], "on": []}
        for seed in range(FRESH_SEEDS, FRESH_SEEDS + args.seeds):
            for side, balance in (("off", False), ("on", True)):
                config = base.replace(balance_losses=balance, seed=seed)
                fid, skipped = best_fid(config, splits.train.images, evaluator)
                runs[side].append({"seed": seed, "fid_lite": round(fid, 3), **skipped})
                print(side, runs[side][-1], flush=True)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "cpu": cpu_model(), "cores": os.cpu_count(),
              "images": args.images, "train": len(splits.train.images),
              "reference": len(splits.reference.images), "iters": args.iters,
              "every": args.every, "config": base.to_dict(), "runs": runs,
              "seconds": round(time.perf_counter() - started, 1)}
    for side in runs:
        scores = [r["fid_lite"] for r in runs[side]]
        report[f"{side}_mean"] = round(statistics.fmean(scores), 3)
        report[f"{side}_std"] = round(statistics.stdev(scores), 3) if len(scores) > 1 else 0.0
    write_report(args.out, report, markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = [f"# Loss balancing on the faces baseline ({report['when']})", "",
             f"CPU {report['cpu']}, {report['cores']} cores.", "",
             f"{report['images']} crops of shipped photographs at {report['config']['image_size']} px "
             f"({report['train']} train, {report['reference']} held out as the reference); "
             f"{report['iters']} iterations, FID-lite every {report['every']} (best kept); "
             f"fresh seeds {[r['seed'] for r in report['runs']['off']]}; "
             f"{report['seconds']:.0f} s.", "",
             "| balancing | FID-lite per seed | mean ± std | D skipped | G skipped |",
             "| --- | --- | --- | --- | --- |"]
    for side in ("off", "on"):
        runs = report["runs"][side]
        lines.append(f"| {side} | {', '.join(str(r['fid_lite']) for r in runs)} | "
                     f"{report[side + '_mean']} ± {report[side + '_std']} | "
                     f"{statistics.fmean(r['skipped_d'] for r in runs):.1%} | "
                     f"{statistics.fmean(r['skipped_g'] for r in runs):.1%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
