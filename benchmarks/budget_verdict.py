"""The verdict at equal compute for the budget mode (issue 33), beside efficiency.py (whose
spaces and baseline it uses): per dataset and seed, with the same total budget B,

- ``budget``: ``gan-search run --budget B`` (TPE proposing; the plan's successive halving,
  the winner and the baseline trained the final length on a fresh seed) delivers a
  generator (its folder ``delivered/``); the iterations it trained are counted;
- ``random``, ``tpe-asha``, ``pbt``: the search as it is without a budget, sized to the same
  budget: TRIALS trials (PBT: members) of B / (TRIALS + 2) iterations, then the winner and
  the baseline once more on a fresh seed (``--confirm 1 --confirm-seeds 1``); TPE + ASHA
  spends less (ASHA stops trials), which its ``spent`` says. Each delivers its winner's
  generator, trained one trial's length;
- ``baseline-whole``: the baseline configuration trained once for the whole budget B on
  a fresh seed of its own per verdict seed (1001 + seed: seed 0 trains on 1001, the seed
  the budget's final runs use; the other seeds bring the baseline's own seed-to-seed spread
  into the verdict, where one seed for all would repeat one run), evaluated every
  ``eval_every`` iterations, its best evaluation kept (the search's rule for a run's best
  checkpoint): what a tutorial user does.

Both generators are then scored the same way, in two feature spaces, on the held-out
reference: FID-lite (the search's score: ``eval_samples`` x 2 generated images, seed 0) and
the MLP hidden-layer Fréchet distance (score_noise.IndependentCheck, the independent check
of issue 23), since a win in one feature space alone may be an artifact of that space.
The log is continuable: a (variant, seed, arm) already in it is not run again.

    python benchmarks/budget_verdict.py digits-hard-16 5 benchmarks/results/cpu-vm-budget-verdict.jsonl
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from efficiency import variant_space  # noqa: E402
from score_noise import IndependentCheck, load_generator  # noqa: E402
from report_md import cpu_model  # noqa: E402

# size, eval_every, budget.trials (the first rung's breadth + the baseline), N, the budget
VARIANTS = {"digits-hard-16": (16, 200, 10, 400, 12800),
            "photos-32": (32, 200, 10, 400, 12800)}
QUICK = {"digits-hard-16": (16, 20, 4, 64, 480), "photos-32": (32, 20, 4, 64, 480)}
PHOTOS = 2100  # crops of the shipped photographs (balance.py), as the score-noise benchmark
FRESH = 1001  # the baseline-whole arm's seed is FRESH + verdict seed: never a search trial's
SETS = 3  # generated sets each delivered generator is scored on
KEPT = Path(tempfile.gettempdir()) / "gan-search-budget-verdict"  # the scored generators
TRIALS = 14  # trials of the searches without a budget (B / 16 iterations each)
# the comparison the goal is about first (every seed), then the searches without a budget
ARMS = (("budget", "baseline-whole"), ("random", "tpe-asha", "pbt"))


def scorers(spec):
    """FID-lite (the search's evaluator) and the MLP check, on the space's held-out split;
    for the photographs (no labels), the MLP learns which photograph a crop is of, on crops
    of their own (labelled_crops)."""
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics import Evaluator

    n = spec.budget.eval_samples
    splits = load_splits(spec.data.source, spec.data.size, spec.data.channels,
                         dict(spec.data.options), n)
    evaluator = Evaluator.for_splits(splits, n)
    if splits.reference.labels is None:
        check = IndependentCheck(labelled_crops(PHOTOS, spec.data.size, seed=1),
                                 labelled_crops(n, spec.data.size, seed=2))
    else:
        check = IndependentCheck(splits.train, splits.reference)
    return splits, evaluator, check


def labelled_crops(count: int, size: int, seed: int):
    """Crops of the shipped photographs (balance.make_folder) with which photograph each is
    of as its label."""
    from types import SimpleNamespace

    import numpy as np
    import torch
    from PIL import Image

    from balance import make_folder, shipped_photos

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "crops", count, size, seed)
        files = sorted(folder.glob("*.png"))
        images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    labels = torch.tensor([int(f.stem.split("_")[1]) % len(shipped_photos()) for f in files])
    return SimpleNamespace(images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                           labels=labels)


def space_of(variant: str, folder: Path, size: int, every: int, trials: int, n: int):
    """efficiency.py's hard space; for ``photos-*``, on a folder of crops at ``size`` px."""
    if not variant.startswith("photos"):
        return variant_space(variant, folder, size, every, every, trials, n)
    import efficiency
    from balance import make_folder

    photos = make_folder(folder / "photos", PHOTOS, size)
    saved = json.loads(json.dumps(efficiency.SPACE))
    efficiency.SPACE["data"] = {"source": "folder", "size": size, "channels": 3,
                                "options": {"path": str(photos)}}
    try:
        return variant_space(variant, folder, size, every, every, trials, n)
    finally:
        efficiency.SPACE.clear()
        efficiency.SPACE.update(saved)


def scored(sample, evaluator, check) -> dict[str, float]:
    """Both feature spaces, each with its noise over SETS generated sets (sample seeds 0..):
    FID-lite's own (its std over generated sets, the reference fixed) and the MLP FD's."""
    fids, stds, fds = [], [], []
    for seed in range(SETS):
        images = sample(evaluator.generated, seed)
        scores = evaluator.score(images)
        fids.append(float(scores["fid_lite"]))
        stds.append(float(scores.get("fid_lite_std", math.nan)))
        fds.append(float(check(images)))
    return {"fid_lite": round(statistics.fmean(fids), 3),
            "fid_lite_std": round(max(statistics.stdev(fids), statistics.fmean(stds)), 3),
            "mlp_fd": round(statistics.fmean(fds), 3), "mlp_fd_std": round(statistics.stdev(fds), 3)}


def keep(generator: Path, name: str) -> str:
    """A copy of a delivered generator beside the log (results/generators/), to score again."""
    target = KEPT / f"{name}.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(generator, target)
    return str(target)


def search_arm(spec, folder: Path, seed: int, budget: int, arm: str, evaluator, check) -> dict:
    """A search (``budget``: under ``--budget``; else a strategy without one, sized to the
    budget) and its delivered generator, scored."""
    from gan_search.app import run_search
    from gan_search.core.config import search_config

    sized = {} if arm == "budget" else {
        "strategy": arm, "trials": TRIALS, "iters": budget // (TRIALS + 2), "confirm": 1,
        "confirm_seeds": 1}
    config = search_config(spec, name=f"{spec.name}-{arm}-{seed}", runs_dir=str(folder),
                           seed=seed, budget=budget if arm == "budget" else None, **sized)
    started = time.perf_counter()
    outcome = run_search(config, log=lambda line: None, track=False)
    if not outcome.delivered:
        return {"delivered": None, "spent": outcome.spent}
    about = json.loads((Path(outcome.delivered) / "delivered.json").read_text())
    sample = load_generator(Path(outcome.delivered) / "generator.pt")
    kept = keep(Path(outcome.delivered) / "generator.pt", f"{spec.name}-{arm}-{seed}")
    return {**scored(sample, evaluator, check), "spent": outcome.spent, "generator": kept,
            "final": config.confirm_iters, "baseline_won": about["baseline"],
            "in_run_fid_lite": round(about["score"], 3),
            "plan": config.plan.describe()[0] if config.plan else None,
            "seconds": round(time.perf_counter() - started, 1)}


def baseline_arm(spec, splits, budget: int, seed: int, evaluator, check) -> dict:
    """The baseline trained ``budget`` iterations on the fresh seed FRESH + ``seed``; its
    best evaluation."""
    import torch

    from gan_search.core.config import config_from_space
    from gan_search.engine.trainer import GANTrainer

    torch.set_num_threads(2)  # alone on the machine's two cores, as the search's two trials
    every = spec.budget.eval_every
    config = config_from_space(spec, {**spec.baseline.values, "iters": budget,
                                      "eval_every": every, "seed": FRESH + seed})
    trainer, best, best_state = GANTrainer(config, splits.train.images, device="cpu"), math.inf, None
    started = time.perf_counter()
    while trainer.step < budget:
        if trainer.train(min(budget, trainer.step + every), sync_every=25).status != "finished":
            break
        fid = float(evaluator.score(trainer.sample(evaluator.generated))["fid_lite"])
        if fid < best:
            best, best_state = fid, {k: v.clone() for k, v in trainer.gen.state_dict().items()}
    if best_state is None:
        return {"diverged": True}
    with tempfile.TemporaryDirectory() as folder:
        trainer.gen.load_state_dict(best_state)
        trainer.save_generator(Path(folder) / "generator.pt")
        sample = load_generator(Path(folder) / "generator.pt")
        result = scored(sample, evaluator, check)
        result["generator"] = keep(Path(folder) / "generator.pt",
                                   f"{spec.name}-baseline-whole-{config.seed}-{budget}")
    return {**result, "spent": trainer.step, "in_run_fid_lite": round(best, 3),
            "seconds": round(time.perf_counter() - started, 1)}


def main(variant: str, seeds: int, log: Path, quick: bool = False) -> None:
    size, every, trials, n, budget = (QUICK if quick else VARIANTS)[variant]
    done = {(r["variant"], r["seed"], r["arm"]) for r in map(json.loads, log.read_text().splitlines())
            } if log.exists() else set()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = space_of(variant, folder, size, every, trials, n)
        splits, evaluator, check = scorers(spec)
        for arms in ARMS:
            for seed in range(seeds):
                for arm in arms:
                    if (variant, seed, arm) in done:
                        continue
                    result = baseline_arm(spec, splits, budget, seed, evaluator, check) \
                        if arm == "baseline-whole" else \
                        search_arm(spec, folder, seed, budget, arm, evaluator, check)
                    record = {"variant": variant, "seed": seed, "arm": arm, "budget": budget,
                              **result, "cpu": cpu_model()}
                    with log.open("a") as out:
                        out.write(json.dumps(record) + "\n")
                    print(json.dumps(record), flush=True)


def beats(mine: dict, theirs: dict, key: str) -> str:
    """``win``/``loss`` when the two differ by more than TIE_SIGMAS standard errors of the
    difference (each score's noise over generated sets), else ``tie``."""
    from gan_search.hpo.outcome.noise import tied

    if tied(mine[key], mine[f"{key}_std"], theirs[key], theirs[f"{key}_std"]):
        return "tie"
    return "win" if mine[key] < theirs[key] else "loss"


def report(log: Path) -> str:
    """The verdict table (markdown) of a log: per variant and seed, every arm in both
    feature spaces; the budget mode against the baseline trained for the whole budget."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    lines = ["| variant | seed | arm | FID-lite ± noise | MLP FD ± noise | trained | "
             "final length | delivered |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    verdicts = []
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"], r["arm"])):
        if "fid_lite" not in r:
            lines.append(f"| {r['variant']} | {r['seed']} | {r['arm']} | none delivered | | "
                         f"{r.get('spent', '')} | | |")
            continue
        whose = "baseline" if r.get("baseline_won") else "winner" if r["arm"] != \
            "baseline-whole" else "baseline (whole budget)"
        lines.append(f"| {r['variant']} | {r['seed']} | {r['arm']} | {r['fid_lite']:.3f} ± "
                     f"{r['fid_lite_std']:.3f} | {r['mlp_fd']:.3f} ± {r['mlp_fd_std']:.3f} | "
                     f"{r['spent']:,} | {r.get('final', r['spent']):,} | {whose} |")
        if r["arm"] == "budget":
            base = next((b for b in records if b["arm"] == "baseline-whole" and
                         b["variant"] == r["variant"] and b["seed"] == r["seed"]
                         and "fid_lite" in b), None)
            if base is not None:
                verdicts.append((r["variant"], r["seed"], beats(r, base, "fid_lite"),
                                 beats(r, base, "mlp_fd"), r["fid_lite"] / base["fid_lite"],
                                 r["mlp_fd"] / base["mlp_fd"]))
    lines += ["", "| variant | seed | budget vs baseline (whole budget), FID-lite | MLP FD | "
              "ratio FID-lite | ratio MLP FD |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {v} | {seed} | {a} | {b} | {ra:.2f} | {rb:.2f} |"
              for v, seed, a, b, ra, rb in verdicts]
    both = sum(a == b == "win" for _, _, a, b, _, _ in verdicts)
    lines += ["", f"The budget mode beats the baseline trained for the whole budget beyond noise "
              f"in both feature spaces on {both} of {len(verdicts)} seeds."]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        print(report(Path(sys.argv[2])))
    else:
        main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), quick="--quick" in sys.argv)
