"""The application: a search recorded in MLflow, as ``gan-search run`` does it, callable from
Python (tests, benchmarks, notebooks). The one place, below the CLI, where the search and the
tracking layers meet: the search runs (``hpo/run.py``), the tracker records it
(``tracking/``), and neither imports the other's layer upwards.

``configure`` checks a search's input before anything heavy loads (nothing here imports
ray, optuna, mlflow or torch at import time); ``run_search`` runs it (``search``: both, the
notebook API); ``report`` is what the CLI prints of its outcome and ``exit_status`` what it
exits with; ``generator_file`` finds the generator of a search, an MLflow run or a file.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from gan_search.core.config import SearchConfig
from gan_search.core.errors import ConfigError
from gan_search.core.results import GENERATOR_FILE, TRAIN_CHECKPOINT, SearchOutcome
from gan_search.core.space import SearchSpec


def _network_of(path: Path) -> tuple[Any, int]:
    """A generator file as (the network, its z_dim): what the tracker registers."""
    from gan_search.engine.models import load_generator

    generator, config, _ = load_generator(path)
    return generator, config.z_dim


def configure(space: str | SearchSpec, *, name: str | None = None, resume: bool = False,
              runs_dir: str = "gan_search_runs", storage: str | None = None,
              optuna_storage: str | None = None, address: str | None = None,
              **options: Any) -> SearchConfig:
    """A search's settings, each input checked (one ConfigError naming it): the storage,
    the Optuna storage URL, the space (a shipped name or a YAML path) and the options of
    ``core.config.search_config`` together, the name (by default ``<space>-<time>``; with
    ``resume`` and no name, the newest search of the space), a cluster's address."""
    from gan_search.core.config import search_config
    from gan_search.core.space import load_space
    from gan_search.hpo.driver.names import check_name, check_storage
    from gan_search.hpo.driver.paths import latest_search, storage_root
    from gan_search.hpo.strategies.study import check_url

    check_storage(storage)
    check_url(optuna_storage)
    spec = load_space(space) if isinstance(space, str) else space
    name = check_name(name) if name is not None else None
    if resume and name is None:
        name = latest_search(runs_dir, spec.name, storage)
        if name is None:
            raise ConfigError(f"--resume: no earlier search of space {spec.name!r} in "
                              f"{storage_root(runs_dir, storage)}; run without --resume to "
                              "start one")
    config = search_config(spec, runs_dir=runs_dir, name=name or
                           f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}", storage=storage,
                           optuna_storage=optuna_storage, address=address, **options)
    if config.address:  # the head found and our token accepted, before ray loads
        from gan_search.hpo.driver.cluster import join_address

        join_address(config.address)
    return config


def search(space: str | SearchSpec, *, resume: bool = False, tracking_uri: str | None = None,
           track: bool = True, log: Callable[[str], None] = print,
           **options: Any) -> SearchOutcome:
    """A whole search from Python, as ``gan-search run`` does it (``from gan_search import
    search``): ``space`` a shipped name or a YAML path (or a loaded space); ``options``
    those of ``configure`` (``name``, ``runs_dir``, ``storage``, ``address``, ...) and of
    the search (``trials``, ``iters``, ``budget``, ``strategy``, ``seed``, ``confirm``,
    ``sets={"batch_size": 32}``, ...). Returns the outcome: ``best``, ``confirmation``,
    ``delivered`` (the folder of the delivered generator), ``rows``."""
    config = configure(space, resume=resume, **options)
    return run_search(config, resume=resume, tracking_uri=tracking_uri, track=track, log=log)


def report(outcome: SearchOutcome, config: SearchConfig) -> list[str]:
    """What a finished (or interrupted) search says: the plan's spend, the leaderboard, the
    best against the baseline, the confirmation, what mattered, where the files are."""
    from gan_search.hpo.driver.paths import LEADERBOARD_FILE, search_folder
    from gan_search.hpo.outcome.report import outcome_lines

    return outcome_lines(outcome, config, search_folder(config) / LEADERBOARD_FILE)


def exit_status(outcome: SearchOutcome) -> tuple[int, str | None]:
    """The exit code a script can trust (0 with a winner; 1 when no trial ended usable) and
    the line that says why, if any."""
    from gan_search.hpo.outcome.report import exit_status as status

    return status(outcome)


def run_search(config: SearchConfig, resume: bool = False, callbacks: list | None = None,
               log: Callable[[str], None] = print, tracking_uri: str | None = None,
               track: bool = True, live: bool = False) -> SearchOutcome:
    """Run (or resume) a search, confirm its winners, say what mattered; record it all in
    MLflow (``track``: the embedded store of ``config.runs_dir``, or ``tracking_uri``) and
    return the outcome. A tracking server that cannot be reached fails before any trial."""
    from gan_search import tracking
    from gan_search.hpo import run

    if track:
        tracking.check_store(config.runs_dir, tracking_uri)

    def tracker(params: dict[str, Any], shared: Any, folder: Path) -> Any:
        started = tracking.MlflowTracker(
            config.runs_dir, tracking_uri, config.spec.name, config.name, params, shared.base,
            config.spec.path, folder, log=log, load_generator=_network_of)
        started.start()
        return started

    return run.run_search(config, resume=resume, callbacks=callbacks, log=log, live=live,
                          tracker=tracker if track else None)


def score_search(name: str, *, n: int | None = None, weights: str | None = None,
                 runs_dir: str = "gan_search_runs", storage: str | None = None,
                 tracking_uri: str | None = None) -> dict[str, Any]:
    """The FID and KID of papers of a finished search's confirmation (every fresh-seed run
    of the winner, the baseline and the other confirmed configurations; N samples each,
    against the first N of the search's held-out reference; ``weights``: the FID Inception
    weights, else torch-fidelity's cache). Written to ``<search>/confirm/standard_fid.json``
    and, when the search was tracked, logged on its MLflow parent run (``standard_fid``,
    ``standard_kid`` of the winner, ``..._baseline`` of the baseline). The table."""
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics.standard import check_standard, standard_scorer
    from gan_search.hpo.driver.names import check_name, check_storage
    from gan_search.hpo.driver.paths import CONFIRM_DIR, folder_of
    from gan_search.hpo.outcome import standard_fid
    from gan_search.tracking import record_on_search

    check_storage(storage)
    folder = folder_of(check_name(name), runs_dir, storage)
    summary = standard_fid.confirmation_of(folder, name)
    check_standard(weights)
    data = summary.get("data") or _space_data(summary["space"], name)
    splits = load_splits(data["source"], data["image_size"], data["channels"], data["options"],
                         data["eval_samples"])
    available = len(splits.reference.images)
    n = n or min(data["eval_samples"], available)
    if not 2 <= n <= available:
        raise ConfigError(f"--n {n}: must lie in 2..{available} (the held-out reference, "
                          f"{splits.description})")
    reference = splits.reference.images[:n]
    with standard_scorer(reference, weights) as score:
        table = standard_fid.score_confirmation(summary, folder, score, n, {
            "reference": f"the first {n} of {splits.description}",
            "weights": weights or "torch-fidelity's cached download"})
    table["mlflow_run"] = record_on_search(
        runs_dir, tracking_uri, name, standard_fid.metrics_of(table),
        folder / CONFIRM_DIR / standard_fid.STANDARD_FID_FILE)
    return table


def standard_fid_lines(table: dict[str, Any]) -> list[str]:
    """What ``gan-search score --search`` prints of ``score_search``'s table."""
    from gan_search.hpo.outcome.standard_fid import table_lines

    where = table.get("mlflow_run")
    return table_lines(table) + [f"logged on the search's MLflow run {where}" if where else
                                 "(the search was not tracked in MLflow: nothing logged there)"]


def score_images(images_path: str, spec: SearchSpec, config: Any, source: str,
                 options: dict[str, Any], *, n: int | None = None, extractor: str = "auto",
                 inception_weights: str | None = None, standard_fid: bool = False,
                 fid_weights: str | None = None,
                 warn: Callable[[str], None] = print) -> dict[str, Any]:
    """Generated images (a folder, a .npy or .pt array) scored against a space's held-out
    reference: FID-lite and the other scores, and with ``standard_fid`` the FID and KID of
    papers; the scores, with what was compared."""
    from gan_search.engine.data import load_splits, read_images
    from gan_search.engine.metrics import Evaluator
    from gan_search.engine.metrics.evaluator import GENERATED_PER_REFERENCE, generated_for

    images, notes = read_images(images_path, config.image_size, config.channels)
    for note in notes:
        warn(f"{images_path}: {note}")
    splits = load_splits(source, config.image_size, config.channels, options,
                         spec.budget.eval_samples)
    n = n or min(spec.budget.eval_samples, len(splits.reference.images))
    if n < 10:
        raise ConfigError(f"--n {n}: at least 10 samples are needed for the k-NN metrics")
    wanted = generated_for(n)  # what FID-lite compares with the N reference images
    if len(images) < wanted:
        raise ConfigError(f"{images_path} has {len(images)} images, fewer than the {wanted} "
                          f"(for N={n}) that the {spec.name} scores use; generate more, or pass "
                          f"--n {len(images) // GENERATED_PER_REFERENCE} (scores are only "
                          "comparable at the same N)")
    if n > len(splits.reference.images):
        raise ConfigError(f"--n {n}: the held-out reference ({splits.description}) has only "
                          f"{len(splits.reference.images)} images; pass --n "
                          f"{len(splits.reference.images)} or less")
    evaluator = Evaluator.for_splits(splits, n, extractor=extractor,
                                     inception_weights=inception_weights)
    scores = evaluator.score(images)
    if standard_fid:
        from gan_search.engine.metrics.standard import standard_scores

        scores.update(standard_scores(images, splits.reference.images[:n], fid_weights))
    return {**scores, "space": spec.name, "images": str(images_path),
            "reference": splits.description}


def _space_data(space: str, name: str) -> dict[str, Any]:
    """What a search's scores were against, for a summary written before it said so: its
    shipped space's data."""
    from gan_search.core.config import search_config
    from gan_search.core.space import list_spaces, load_space
    from gan_search.hpo.outcome.summary import data_of

    if space not in list_spaces():
        raise ConfigError(f"--search {name}: its summary does not say which data it was "
                          f"scored against and {space!r} is not a shipped space")
    return data_of(search_config(load_space(space), name=name))


@contextlib.contextmanager
def generator_file(*, search: str | None = None, run: str | None = None,
                   checkpoint: str | None = None, runs_dir: str = "gan_search_runs",
                   storage: str | None = None,
                   tracking_uri: str | None = None) -> Iterator[tuple[Path, str]]:
    """The generator file of a finished search (its delivered generator), of an MLflow
    run (a trial's best checkpoint; "best": the latest search's winner) or a file: a
    ``train`` output folder or its checkpoint.pt, a trial's checkpoint folder or any
    generator.pt. One of the three; a file from MLflow lives while the context does. Yields
    (the file, what it is: ``search NAME``, ``run ID`` with "best" resolved, ``checkpoint
    PATH``)."""
    from gan_search.hpo.driver.names import check_name, check_storage
    from gan_search.hpo.driver.paths import DELIVERED_DIR, folder_of

    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        found = next((p for p in (path, path / GENERATOR_FILE, path / TRAIN_CHECKPOINT)
                      if p.is_file()), None)
        if found is None:
            raise ConfigError(f"--checkpoint {checkpoint}: no generator.pt or checkpoint.pt "
                              "there; give a train output folder, a checkpoint folder or file")
        yield found, f"checkpoint {checkpoint}"
    elif search is not None:
        check_storage(storage)
        path = folder_of(check_name(search), runs_dir, storage) / DELIVERED_DIR / GENERATOR_FILE
        if not path.is_file():
            raise ConfigError(f"--search {search}: no delivered generator at {path}; a search "
                              "delivers one when it ends (gan-search run)")
        yield path, f"search {search}"
    else:
        import tempfile

        from gan_search.tracking import download_generator, find_run

        client, run_id = find_run(runs_dir, tracking_uri, run or "best")
        with tempfile.TemporaryDirectory() as folder:
            yield download_generator(client, run_id, folder), f"run {run_id}"

