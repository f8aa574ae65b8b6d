"""FID-lite's cost by its generated count (issue 23): one evaluation at N generated images
(as before 2026-12-02) and at the default ``generated_for(N)``, interleaved with training in
one process, on a space's defaults; medians, and each as a share of an eval interval's
training.

    python benchmarks/eval_generated.py digits 9     # space, repeats
"""
import statistics, time, sys
from gan_search.core.config import config_from_space
from gan_search.core.space import load_space
from gan_search.engine.data import load_splits
from gan_search.engine.metrics import Evaluator
from gan_search.engine.trainer import GANTrainer
spec = load_space(sys.argv[1]); config = config_from_space(spec)
splits = load_splits(spec.data.source, config.image_size, config.channels, dict(spec.data.options), spec.budget.eval_samples)
n = min(spec.budget.eval_samples, len(splits.reference.images))
before = Evaluator.for_splits(splits, n, generated=n)
now = Evaluator.for_splits(splits, n)
trainer = GANTrainer(config, splits.train.images, device="cpu"); trainer.train(2)
t = {"before": [], "now": [], "iter": []}
for _ in range(int(sys.argv[2])):
    for name, ev in (("before", before), ("now", now)):
        s = time.perf_counter(); ev.score(trainer.sample(ev.generated)); t[name].append(time.perf_counter() - s)
    s = time.perf_counter(); trainer.train(trainer.step + 40, sync_every=40); t["iter"].append((time.perf_counter() - s) / 40)
interval = statistics.median(t["iter"]) * config.eval_every
for name in ("before", "now"):
    e = statistics.median(t[name]); print(f"{sys.argv[1]}: {name} generated {before.generated if name == 'before' else now.generated}: eval {e:.3f} s, interval {interval:.1f} s ({config.eval_every} it), share {100 * e / interval:.1f}%")
