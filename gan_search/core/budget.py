"""A search under a budget: how ``--budget N`` (training iterations of the whole search,
confirmation included) is spent.

A plan is rungs of successive halving (Jamieson & Talwalkar 2016; one bracket of
Hyperband, Li et al. 2017) whose top rung is a long training:

- ``arms[k]`` configurations the sampler proposed train to ``rungs[k]`` iterations; at each
  rung the best ``arms[k + 1]`` go on (the rest stop there), and one reaches the top rung,
  ``final``, the final length;
- the baseline (the space's hand-picked configuration), when there is one, is an arm of every
  rung and is never stopped: at the top it trains ``final`` iterations beside the winner;
- then the winner and the baseline are trained again, from scratch, for ``final``
  iterations on ``seeds`` fresh seeds each (the confirmation), and compared on those.

The final length is the longest the budget allows once the rungs below it are paid for: on
real data a DCGAN goes on improving long after the short trials of a search end (MNIST, the
tutorial's configuration: 2.59 FID-lite at 1,200 iterations, 1.40 at 12,000; issue 33), so
what a user takes away should be trained long. The first rung is the space's
``scheduler.grace_period`` evaluations: the shortest training measured to rank
configurations by their final quality (benchmarks/results/cpu-vm-rung-rank.md). The first
rung holds at least the space's ``budget.trials`` - 1 proposed arms (its breadth); what the
rounding of the final length leaves goes to more first-rung arms.

A plan of one rung (``rungs == (final,)``) is every arm trained to the final length: the
strategies that stop no trial early (``tpe``, ``gp``, ``random``) and PBT, whose members all
train the final length (``budget.trials`` members, the baseline one of them).

Pure arithmetic, standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gan_search.core.errors import ConfigError
from gan_search.core.space import SearchSpec
from gan_search.core.vocabulary import Scheduler, Strategy

@dataclass(frozen=True)
class Plan:
    """How a budget is spent (see the module docstring)."""

    total: int  # the budget: training iterations of the whole search, confirmation included
    rungs: tuple[int, ...]  # the search's rungs (iterations), ascending; the last: its trials' length
    arms: tuple[int, ...]  # proposed configurations that train to each rung (not the baseline)
    final: int  # the top rung: the finalists' length, trained from scratch on fresh seeds
    seeds: int  # fresh seeds of the top rung, for the winner and the baseline each
    baseline: bool = True  # the baseline is an arm of every rung, never stopped

    @property
    def trials(self) -> int:
        """The search's trials: every proposed arm, and the baseline."""
        return self.arms[0] + int(self.baseline)

    @property
    def halving(self) -> bool:
        """More than one search rung: arms are stopped at the lower ones."""
        return len(self.rungs) > 1

    @property
    def search_iters(self) -> int:
        """What the search's trials train: each arm to the rung it stops at, the baseline to
        the last."""
        spent, below = 0, 0
        for rung, arms in zip(self.rungs, self.arms):
            spent += arms * (rung - below)
            below = rung
        return spent + self.baseline * self.rungs[-1]

    @property
    def confirm_iters(self) -> int:
        """The top rung: the winner and the baseline trained on the fresh seeds."""
        return (1 + int(self.baseline)) * self.seeds * self.final

    @property
    def iters(self) -> int:
        return self.search_iters + self.confirm_iters

    def describe(self) -> list[str]:
        """The plan, as the search prints it when it starts."""
        base = " and the baseline" if self.baseline else ""
        lines = [f"budget {self.total:,} iterations: {self.iters:,} planned "
                 f"({self.search_iters:,} search, {self.confirm_iters:,} top rung), final "
                 f"length {self.final:,} iterations ({100 * self.final / self.total:.0f}% of "
                 "the budget)"]
        below = 0
        for k, (rung, arms) in enumerate(zip(self.rungs, self.arms)):
            on = self.arms[k + 1] if k + 1 < len(self.arms) else 1
            lines.append(f"  rung {k + 1}: {arms} proposed configuration{'s' * (arms != 1)}{base} "
                         f"train to {rung:,} iterations ({(arms + self.baseline) * (rung - below):,}"
                         f" iterations); the best {on} go{'es' * (on == 1)} on")
            below = rung
        who = "the winner and the baseline" if self.baseline else "the winner"
        lines.append(f"  rung {len(self.rungs) + 1} (final length): {who} trained from scratch for "
                     f"{self.final:,} iterations on {self.seeds} fresh seed"
                     f"{'s' * (self.seeds != 1)} each ({self.confirm_iters:,} iterations); the "
                     "winner's best long-trained generator is delivered")
        return lines


def plan_for(spec: SearchSpec, strategy: Strategy, total: int, seeds: int,
             source: str = "--budget") -> Plan:
    """A space's plan for ``total`` iterations: successive halving for a strategy that stops
    trials early (its first rung ``scheduler.grace_period`` evaluations, its reduction factor
    ``scheduler.reduction_factor``, at least ``budget.trials`` - 1 proposed arms), else one
    rung (PBT's population, or trials that all train to the end)."""
    baseline = spec.baseline is not None
    breadth = max(1, spec.budget.trials - int(baseline))
    grain = spec.budget.eval_every
    if strategy.scheduler == Scheduler.ASHA:
        return halving_plan(total, spec.scheduler.grace_period * grain,
                            spec.scheduler.reduction_factor, breadth, seeds, grain, baseline,
                            source)
    return single_rung_plan(total, breadth, seeds, grain, baseline, source)


def halving_plan(total: int, first: int, eta: int, breadth: int, seeds: int, grain: int,
                 baseline: bool = True, source: str = "--budget") -> Plan:
    """Successive halving under ``total`` iterations: search rungs ``first * eta**k``, at
    least ``breadth`` proposed arms at the first (``eta**K`` of them, ``K`` the fewest
    halvings that take ``breadth``), ``eta`` at the last, whose best goes to the top rung
    with the baseline; the final length the longest the rest of the budget pays for (a
    multiple of ``grain``, the evaluation interval), at least ``eta`` times the last search
    rung; what the rounding leaves, as more first-rung arms."""
    if eta < 2:
        raise ConfigError(f"{source}: successive halving needs scheduler.reduction_factor >= 2, "
                          f"got {eta}")
    halvings = 1
    while eta ** halvings < breadth:
        halvings += 1
    rungs = tuple(first * eta ** k for k in range(halvings))
    arms = tuple(eta ** (halvings - k) for k in range(halvings))
    return _with_final(total, rungs, arms, seeds, grain, baseline, source,
                       lowest=eta * rungs[-1], unit=first)


def single_rung_plan(total: int, arms: int, seeds: int, grain: int, baseline: bool = True,
                     source: str = "--budget") -> Plan:
    """Every arm (and the baseline) trained to the final length in the search (PBT's
    members; a strategy that stops no trial early), then the top rung on the fresh seeds."""
    runs = arms + int(baseline) + (1 + int(baseline)) * seeds
    final = total // runs // grain * grain
    if final < grain:
        raise ConfigError(f"{source} {total}: too small for {arms + int(baseline)} trials and "
                          f"the final runs on {seeds} fresh seed(s); give at least {runs * grain}")
    return Plan(total, (final,), (arms,), final, seeds, baseline)


def _with_final(total: int, rungs: tuple[int, ...], arms: tuple[int, ...], seeds: int,
                grain: int, baseline: bool, source: str, lowest: int, unit: int) -> Plan:
    """The plan of these search rungs with the longest final length the budget pays for."""
    search = Plan(total, rungs, arms, 0, seeds, baseline).search_iters
    per_final = max(1, (1 + int(baseline)) * seeds)
    final = (total - search) // per_final // grain * grain
    if final < lowest:
        need = Plan(total, rungs, arms, -(-lowest // grain) * grain, seeds, baseline).iters
        raise ConfigError(f"{source} {total}: too small for successive halving over {arms[0]} "
                          f"configurations from {rungs[0]} iterations and a final length of at "
                          f"least {lowest} on {seeds} fresh seed(s); give at least {need}, or "
                          "fewer seeds (--confirm-seeds)")
    plan = Plan(total, rungs, arms, final, seeds, baseline)
    extra = (total - plan.iters) // unit
    return Plan(total, rungs, (arms[0] + extra, *arms[1:]), final, seeds, baseline)


def spent_share(spent: int, total: int) -> str:
    """"16,120 of 16,000 (100.8%)": what a search trained against its budget."""
    share = 100 * spent / total if total else math.nan
    return f"{spent:,} of {total:,} ({share:.1f}%)"
