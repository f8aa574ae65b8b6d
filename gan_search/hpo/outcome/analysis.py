"""What mattered in a search: Optuna's parameter importances and plots of its study.

Importances are Optuna's default evaluator (PED-ANOVA in Optuna 5), which also works on a
two-objective study (there it rates what brings a trial near the Pareto front). The plots
are Optuna's own matplotlib ones: optimization history, importances, parallel coordinates,
and the Pareto front for two objectives. Optuna + matplotlib; no Ray, no MLflow.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

LABELS = {"score": "first objective", "score_collapse": "collapse", "score_kid": "KID",
          "score_fid_lite": "FID-lite"}


def complete_trials(study: Any) -> list:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def importances(study: Any) -> list[tuple[str, float]]:
    """(setting, share of the total importance), most important first; empty when the
    study has too few finished trials, or no setting varied, to say anything."""
    import optuna

    if len(complete_trials(study)) < 3:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raw = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            return []
    total = sum(raw.values())
    if not raw or total <= 0:
        return []
    return sorted(((name, value / total) for name, value in raw.items()),
                  key=lambda item: -item[1])


def save_plots(study: Any, keys: list[str], folder: Path, with_importances: bool = True
               ) -> list[Path]:
    """Optuna's matplotlib plots of the study as PNGs in ``folder``; a plot that Optuna
    cannot draw for this study (too few trials, one parameter) is left out, and so is the
    importances plot when ``importances`` found too little to say (it would show noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    names = [LABELS.get(k, k) for k in keys]
    multi = len(keys) > 1
    first: dict[str, Any] = {"target": (lambda t: t.values[0]) if multi else None,
                             "target_name": names[0]}
    makers: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: plots.plot_optimization_history(study, **first),
        "param_importances": lambda: plots.plot_param_importances(
            study, **({"target": first["target"], "target_name": names[0]} if multi else {})),
        "parallel_coordinate": lambda: plots.plot_parallel_coordinate(study, **first),
    }
    if not with_importances:
        del makers["param_importances"]
    if multi:
        makers["pareto_front"] = lambda: plots.plot_pareto_front(study, target_names=names)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in makers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
            try:
                axes = make()
            except (ValueError, RuntimeError, TypeError, IndexError):
                plt.close("all")
                continue
        figure = getattr(axes, "figure", None) or axes.flat[0].figure
        figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / f"{name}.png")
    return written


def save_schedule_plot(trial_id: str, metrics: dict[str, Any], iters: int,
                       folder: Path) -> list[Path]:
    """The settings a PBT member trained with, step by step (its ``schedule``, copies from
    other members included), one panel per setting that changed: ``pbt_schedule.png``."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = json.loads(metrics.get("schedule") or "[]")
    names = [k for k in (schedule[0]["values"] if schedule else {})
             if len({json.dumps(e["values"].get(k)) for e in schedule}) > 1]
    if not names:
        return []
    figure, axes = plt.subplots(len(names), 1, figsize=(6, 1.8 * len(names)), sharex=True,
                                squeeze=False)
    for axis, name in zip(axes[:, 0], names):
        steps = [e["step"] for e in schedule] + [iters]
        values = [e["values"][name] for e in schedule]
        axis.step(steps, values + values[-1:], where="post")
        axis.set_ylabel(name)
        if name.startswith("lr_"):
            axis.set_yscale("log")
    axes[-1, 0].set_xlabel("iteration")
    axes[0, 0].set_title(f"PBT schedule of trial {trial_id} "
                         f"({len(schedule) - 1} changes, copies included)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pbt_schedule.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return [path]


def top_line(shares: list[tuple[str, float]], top: int = 4) -> str:
    """"what mattered: lr_d 41%, lr_g 22%, ..." for the summary."""
    if not shares:
        return "what mattered: too few finished trials to say (Optuna's importances need 3)"
    return "what mattered (Optuna importances): " + ", ".join(
        f"{name} {100 * share:.0f}%" for name, share in shares[:top])
