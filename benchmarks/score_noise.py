"""How noisy is FID-lite, and does it order the best generators right? (issue 23)

For every trial of one or more finished searches (each trial's best kept checkpoint), this
draws R independent generated sets and scores each with every candidate score, against the
same held-out reference the search used:

- ``fid@N``: FID-lite as the search computes it (randconv features, N generated vs the N
  reference images), and with more generated images than reference images (``fid@4N``);
- ``fid_inf``: Chong & Forsyth's FID-infinity, FID extrapolated linearly in 1/M to M -> inf
  generated images (fitted at M = N .. 4N);
- ``kid``: KID on the same features (unbiased);
- ``domain_fd``: the Fréchet distance on the features of the product's own domain
  classifier (labelled data only), 4N generated.

Noise: the standard deviation of each score over the R sets of one generator (the
reference fixed, as in a search), its median over generators, against the spread (standard
deviation) of the 10 best trials' scores. Rank validity: Spearman's rank correlation with an
independent check, over all trials and over the 10 best (best by the check): a Fréchet
distance on the hidden layer of an MLP classifier (scikit-learn, raw pixels; another model
family, trained apart from the product's classifier on the same training split), with 8N
generated images.

    python benchmarks/score_noise.py RUNS_DIR [RUNS_DIR ...] --space digits --out results/x.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

SETS = 5  # independent generated sets per generator
TOP = 10


def best_checkpoints(runs_dir: Path) -> dict[str, Path]:
    """Each trial's kept checkpoint of its best step (Tune keeps the best by FID-lite), by
    trial folder."""
    found = {}
    for trial in sorted({p.parent.parent for p in runs_dir.glob("tune/**/generator.pt")}):
        saved = {}
        for path in trial.glob("checkpoint_*/generator.pt"):
            saved[torch.load(path, map_location="cpu", weights_only=True)["step"]] = path
        if not saved:
            continue
        last = json.loads((saved[max(saved)].parent / "progress.json").read_text())
        if last.get("best_step") in saved:
            found[str(trial.relative_to(runs_dir / "tune"))] = saved[last["best_step"]]
    return found


def load_generator(path: Path):
    from gan_search.engine.models import load_generator as load
    from gan_search.engine.trainer import draw_noise, to_uint8

    gen, config, _ = load(path)

    def sample(n: int, seed: int) -> torch.Tensor:
        z = draw_noise(n, config, torch.Generator().manual_seed(seed), "cpu")
        with torch.no_grad():
            return torch.cat([to_uint8(gen(chunk).float()) for chunk in z.split(256)])
    return sample


class IndependentCheck:
    """Fréchet distance on the hidden layer of an MLP trained on the same training split."""

    def __init__(self, train, reference):
        from sklearn.neural_network import MLPClassifier

        self.mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=0)
        self.mlp.fit(self._pixels(train.images), train.labels.numpy())
        self.accuracy = float(self.mlp.score(self._pixels(reference.images),
                                             reference.labels.numpy()))
        self.ref = self._stats(reference.images)

    @staticmethod
    def _pixels(images: torch.Tensor) -> np.ndarray:
        return images.flatten(1).float().numpy() / 255.0

    def _features(self, images: torch.Tensor) -> np.ndarray:
        hidden = self._pixels(images) @ self.mlp.coefs_[0] + self.mlp.intercepts_[0]
        return np.maximum(hidden, 0)

    def _stats(self, images):
        from gan_search.engine.metrics.distances import gaussian_stats
        return gaussian_stats(self._features(images))

    def __call__(self, images: torch.Tensor) -> float:
        from gan_search.engine.metrics.distances import frechet_distance
        return frechet_distance(*self.ref, *self._stats(images))


def candidate_scores(evaluator, root: np.ndarray, images: torch.Tensor, n: int) -> dict[str, float]:
    """Every candidate score of one generated set of 4n images, and the delta method's
    estimate of FID-lite's noise (``distances.frechet_with_noise``) from that set alone."""
    from gan_search.engine.metrics.distances import (frechet_distance, frechet_with_noise,
                                                     gaussian_stats, kid_terms)
    from gan_search.engine.metrics.features import embed

    ref = evaluator.reference
    features = embed(evaluator.extractor, images)
    fid = {m: frechet_with_noise(ref["mu"], root, features[:m]) for m in (n, 2 * n, 3 * n, 4 * n)}
    slope, intercept = np.polyfit([1 / m for m in fid], [v[0] for v in fid.values()], 1)
    scores = {"fid@N": fid[n][0], "fid@2N": fid[2 * n][0], "fid@4N": fid[4 * n][0],
              "fid_inf": float(intercept), "delta@N": fid[n][1], "delta@2N": fid[2 * n][1],
              "delta@4N": fid[4 * n][1],
              "kid": kid_terms(ref["features"], features[:n], float(ref["kid_real_term"]))}
    if evaluator.classifier is not None:
        model = evaluator.classifier.model.eval()
        with torch.no_grad():
            real = model.features(evaluator.reference["images"]).double().numpy()
            fake = model.features(images).double().numpy()
        scores["domain_fd"] = frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
    return scores


def spearman(a, b) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def measure(runs: list[Path], space: str, sets: int = SETS, folder: Path | None = None) -> dict:
    from gan_search.core.space import load_space
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics import Evaluator
    from gan_search.engine.metrics.distances import matrix_sqrt

    spec = load_space(space)
    data = spec.data
    source, options = ("folder", {"path": str(folder)}) if folder else (data.source, data.options)
    splits = load_splits(source, data.size, data.channels, dict(options or {}),
                         spec.budget.eval_samples)
    evaluator = Evaluator.for_splits(splits, spec.budget.eval_samples)
    n = evaluator.n
    # the independent check needs labels: unlabelled data gets the noise table alone
    check = IndependentCheck(splits.train, splits.reference) \
        if splits.reference.labels is not None else None
    root = matrix_sqrt(evaluator.reference["sigma"])
    rows = {}
    for run in runs:
        for name, path in best_checkpoints(run).items():
            sample = load_generator(path)
            per_set = [candidate_scores(evaluator, root, sample(4 * n, 1000 + s), n)
                       for s in range(sets)]
            rows[f"{run.name}:{name}"] = {
                "scores": {k: [row[k] for row in per_set] for k in per_set[0]},
                "check": check(sample(8 * n, 999)) if check else 0.0}
    return {"space": space + (f" on {folder}" if folder else ""), "n": n, "sets": sets,
            "check_accuracy": check.accuracy if check else None,
            "rows": rows}


def summarise(measured: dict) -> list[dict]:
    """Per score: its noise for one generator (the root mean of the generators' variances
    over their generated sets, pooled over the 10 best by the check), the delta method's
    estimate of it from one set (pooled alike), the spread of the 10 best trials' scores
    (one set each, as a search sees them) and Spearman against the check."""
    rows = measured["rows"]
    names = sorted(rows, key=lambda k: rows[k]["check"])  # without a check: in name order
    check = [rows[k]["check"] for k in names]
    table = []
    for score in [k for k in rows[names[0]]["scores"] if not k.startswith("delta")]:
        first = [rows[k]["scores"][score][0] for k in names]  # one set: what a search sees
        pooled = lambda key: float(np.sqrt(np.mean([  # noqa: E731
            np.var(rows[k]["scores"][key], ddof=1) for k in names[:TOP]])))
        estimate = "delta@" + score[4:] if score.startswith("fid@") else None
        estimated = float(np.sqrt(np.mean([rows[k]["scores"][estimate][0] ** 2
                                           for k in names[:TOP]]))) if estimate else None
        table.append({"score": score, "noise": pooled(score), "estimated": estimated,
                      "spread_top": float(np.std(sorted(first)[:TOP], ddof=1)),
                      "spearman_all": spearman(first, check) if any(check) else None,
                      "spearman_top": spearman(first[:TOP], check[:TOP]) if any(check) else None,
                      "trials": len(names)})
    return table


def markdown(measured: dict, table: list[dict]) -> str:
    lines = [f"space `{measured['space']}`, N = {measured['n']}, {table[0]['trials']} trials, "
             f"{measured['sets']} generated sets each; independent check: MLP hidden-layer FD "
             f"(held-out accuracy {_fmt(measured['check_accuracy'])})", "",
             "| score | noise (std, one generator) | its delta-method estimate | spread of "
             "the best 10 | noise / spread | Spearman, all | Spearman, 10 best |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in table:
        estimated = "-" if row["estimated"] is None else f"{row['estimated']:.4g}"
        lines.append(f"| {row['score']} | {row['noise']:.4g} | {estimated} | {row['spread_top']:.4g} | "
                     f"{row['noise'] / row['spread_top']:.2f} | {_fmt(row['spearman_all'])} | "
                     f"{_fmt(row['spearman_top'])} |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="runs dirs of finished searches")
    parser.add_argument("--space", default="digits")
    parser.add_argument("--sets", type=int, default=SETS)
    parser.add_argument("--data", type=Path, help="the folder of images the searches used")
    parser.add_argument("--out", type=Path, required=True, help="JSON of every measurement")
    parser.add_argument("--table", action="store_true", help="only print --out's table again")
    args = parser.parse_args()
    if args.table:
        measured = json.loads(args.out.read_text())
        print(markdown(measured, summarise(measured)))
        return
    started = time.time()
    measured = measure(args.runs, args.space, args.sets, args.data)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report_md import cpu_model  # noqa: E402

    measured.update(cpu=cpu_model(), seconds=round(time.time() - started, 1))
    table = summarise(measured)
    args.out.write_text(json.dumps({**measured, "table": table}, indent=1))
    print(markdown(measured, table))


if __name__ == "__main__":
    main()
