"""Loss balancing, the faces tutorial's training rule: skip the stronger side's update.

The faces tutorial (``seeds/003_72167bf5fff51932.txt`` line 34) trains "taking care that
neither the generator nor the discriminator becomes too strong by balancing their losses",
without stating its rule. The rule is taken from the tutorial's companion code, in the form
found verbatim in the many public copies of it: both losses are measured on the step's batch
before any update, then

    if g_loss * 1.5 < d_loss: G is not trained this step
    if d_loss * 2 < g_loss:   D is not trained this step

where ``d_loss`` is the mean of D's real and fake cross-entropies (half of the trainer's
``loss_d``, which sums them) and ``g_loss`` the generator's non-saturating loss. The two
factors are settings (``balance_g_factor`` 1.5, ``balance_d_factor`` 2.0), the rule is off
unless ``balance_losses`` is on. If both sides would be skipped (possible only with factors
below 1), both train: the rule never stalls training.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Balancer:
    """Decides each step which side trains, and counts the steps each side skipped."""

    g_factor: float
    d_factor: float
    skipped_d: int = 0
    skipped_g: int = 0

    def decide(self, loss_d: float, loss_g: float) -> tuple[bool, bool]:
        """(train D, train G) from this step's losses before any update (``loss_d``: the
        trainer's sum of D's real and fake losses)."""
        d_loss = loss_d / 2  # the tutorial's D loss: the mean of the real and fake halves
        skip_g = loss_g * self.g_factor < d_loss
        skip_d = d_loss * self.d_factor < loss_g
        if skip_g and skip_d:  # never stall: both train
            return True, True
        self.skipped_d += skip_d
        self.skipped_g += skip_g
        return not skip_d, not skip_g

    def shares(self, steps: int) -> dict[str, float]:
        """The share of the steps so far in which each side skipped its update."""
        steps = max(steps, 1)
        return {"skipped_d": self.skipped_d / steps, "skipped_g": self.skipped_g / steps}

    def state_dict(self) -> dict[str, int]:
        return {"skipped_d": self.skipped_d, "skipped_g": self.skipped_g}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped_d, self.skipped_g = int(state["skipped_d"]), int(state["skipped_g"])
