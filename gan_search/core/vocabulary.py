"""The words every layer shares, defined once, as types.

Each is a ``StrEnum``: a member *is* its string, so JSON files, Tune results and MLflow tags
read exactly as they did when these were loose strings, and a value read back from any of
them compares equal to its member (``Status("stopped") is Status.STOPPED``).
A leaf module: standard library only.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a trial stands. The engine ends a training run ``FINISHED`` or ``DIVERGED``;
    the search adds the rest."""

    RUNNING = "running"  # still training (a result between evaluations)
    FINISHED = "finished"  # trained its whole budget
    STOPPED = "stopped"  # stopped early by ASHA (a normal end: it was worse than its rung)
    COLLAPSED = "collapsed"  # ended by the collapse stopper
    DIVERGED = "diverged"  # non-finite losses
    FAILED = "failed"  # its own error (code, configuration, a GPU it cannot see)
    INTERRUPTED = "interrupted"  # the search stopped (Ctrl-C) before it ended; --resume runs it


# a trial in one of these has ended and will not run again on --resume
ENDED = (Status.FINISHED, Status.STOPPED, Status.COLLAPSED, Status.DIVERGED, Status.FAILED)
# ended normally: its score is a trained generator's (ASHA's stop is a normal end)
TRAINED = (Status.FINISHED, Status.STOPPED)
# ended without a usable generator
BROKEN = (Status.DIVERGED, Status.FAILED)


class Objective(StrEnum):
    """A score a search can minimise (``objectives:`` in a space); every trial reports
    ``score_<objective>`` for each."""

    FID_LITE = "fid_lite"
    COLLAPSE = "collapse"
    KID = "kid"


OBJECTIVES = tuple(Objective)

DIVERGED_SCORE = 1.0e4  # worse than any FID-lite a working generator reaches
# each objective's worst value: what a trial that diverged or failed reports for it, and
# what a fresh-seed confirmation run that did not train to its end counts as in a mean
WORST = {Objective.FID_LITE: DIVERGED_SCORE, Objective.COLLAPSE: 1.0, Objective.KID: DIVERGED_SCORE}


class Role(StrEnum):
    """What an MLflow run is to its search (the ``gan_search.role`` tag)."""

    PARENT = "parent"  # the search itself
    SEARCH = "search"  # a trial the sampler proposed
    BASELINE = "baseline"  # the space's hand-picked configuration
    CONFIRM = "confirm"  # a fresh-seed rerun of a top configuration (or a PBT schedule)
    MEMBER = "member"  # a member of a PBT population (it may copy another's weights)


class Device(StrEnum):
    """``--device`` of ``run`` (see hpo/driver/placement.py)."""

    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"


DEVICES = tuple(Device)


class Sampler(StrEnum):
    """Who proposes the configurations: Optuna's TPE, its Gaussian-process sampler (which
    Optuna's documentation recommends for 10 to 100 trials), or random search (the baseline
    a search must beat). Part of a ``Strategy``."""

    TPE = "tpe"
    GP = "gp"
    RANDOM = "random"
    QMC = "qmc"  # Optuna's quasi-Monte Carlo (Sobol) sampler: a PBT population's start


class Scheduler(StrEnum):
    """Early stopping (ASHA) or none. Part of a ``Strategy``; ``scheduler.kind`` is its
    older spelling in a space file."""

    ASHA = "asha"
    PBT = "pbt"  # population-based training: members copy better members and perturb
    NONE = "none"


class Strategy(StrEnum):
    """How to search (``--strategy``, a space's ``strategy:``): who proposes the
    configurations, then ``-asha`` when ASHA stops the clearly worse ones early."""

    TPE_ASHA = "tpe-asha"  # Optuna TPE; ASHA's stops told to Optuna as pruned
    TPE = "tpe"  # Optuna TPE, every trial trains its whole budget
    GP_ASHA = "gp-asha"  # Optuna's GP sampler (it models the trials that trained to the end)
    GP = "gp"
    RANDOM_ASHA = "random-asha"
    RANDOM = "random"  # random search, every trial its whole budget: the one to beat
    # population-based training: a population (the baseline and configurations Optuna's QMC
    # sampler spreads over the space) trains to full length; Ray Tune's PBT copies good
    # members' weights into bad ones and perturbs the settings that can change in training
    PBT = "pbt"

    @property
    def sampler(self) -> Sampler:
        return Sampler.QMC if self == Strategy.PBT else Sampler(self.value.removesuffix("-asha"))

    @property
    def scheduler(self) -> Scheduler:
        if self == Strategy.PBT:
            return Scheduler.PBT
        return Scheduler.ASHA if self.value.endswith("-asha") else Scheduler.NONE

    @classmethod
    def of(cls, sampler: Sampler, scheduler: Scheduler) -> "Strategy":
        return cls(f"{sampler.value}-asha" if scheduler == Scheduler.ASHA else sampler.value)


class Extractor(StrEnum):
    """The feature network FID-lite, KID and the collapse measures embed images with
    (``--extractor`` of ``score``; ``auto`` picks a random-conv network by image size)."""

    AUTO = "auto"
    RANDCONV32 = "randconv32"
    RANDCONV64 = "randconv64"
    INCEPTION = "inception"  # true FID's Inception-v3, with weights the user provides


EXTRACTORS = tuple(Extractor)


def names(kind: type[StrEnum]) -> str:
    """``"tpe or random"``, ``"auto, cpu or gpu"``: the valid values, for messages."""
    values = [member.value for member in kind]
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
