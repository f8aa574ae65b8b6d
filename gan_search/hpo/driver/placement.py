"""Where trials run: the resources each trial asks Ray for.

Decided by the space's ``resources`` and the user's ``--device``, never by a snapshot of
the cluster at start-up: an autoscaling cluster (``ray up cluster.yaml``) has no GPU node
until trials ask for one, so a search on a cluster asks for the space's GPU share and the
autoscaler adds GPU workers for it.

- ``auto`` (default): on a cluster (``--address``), the space's ``resources.gpu``; on the
  private local Ray, a GPU only when this machine has one (else CPU, with a note).
- ``cpu``: never a GPU.
- ``gpu``: always a GPU (the space's share, or one whole GPU for a space without one);
  refused where no GPU can ever come (the private local Ray on a machine without one).

Standard library only (plus the space model), so the command line decides before Ray starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_search.core.errors import ConfigError
from gan_search.core.space import Resources
from gan_search.core.vocabulary import DEVICES



@dataclass(frozen=True)
class Placement:
    """What one trial asks Ray for, and a note for the user when the space's ask changed."""

    cpu: float
    gpu: float = 0.0
    note: str | None = None

    def resources(self) -> dict[str, float]:
        """For ``tune.with_resources``."""
        return {"cpu": self.cpu, "gpu": self.gpu} if self.gpu else {"cpu": self.cpu}

    def describe(self) -> str:
        return f"CPU {self.cpu:g}" + (f", GPU {self.gpu:g}" if self.gpu else "")


def place_trials(resources: Resources, device: str, on_cluster: bool, local_gpus: int) -> Placement:
    """The resources of each trial.

    Args:
        resources: the space's ``resources`` section.
        device: ``--device``: auto, cpu or gpu.
        on_cluster: the search joins a Ray cluster (``--address``) that may add GPU nodes.
        local_gpus: CUDA GPUs on this machine (used only without a cluster).
    """
    if device not in DEVICES:
        raise ConfigError(f"--device {device}: expected one of {', '.join(DEVICES)}")
    cpu, share = resources.cpu, resources.gpu
    if device == "cpu":
        note = f"trials run on CPU (--device cpu; the space asks for GPU {share:g})" if share else None
        return Placement(cpu, 0.0, note)
    if device == "gpu":
        if not on_cluster and local_gpus == 0:
            raise ConfigError("--device gpu: this machine has no CUDA GPU and no --address names a "
                              "cluster that could add one; join a GPU cluster with --address, or "
                              "use --device auto or cpu")
        return Placement(cpu, share or 1.0)
    if share == 0:
        return Placement(cpu)
    if on_cluster or local_gpus > 0:
        return Placement(cpu, share)
    return Placement(cpu, 0.0, f"the space asks for GPU {share:g} per trial but this machine has "
                               "no CUDA GPU; trials run on CPU (--address joins a GPU cluster)")
