"""The ``gan-search`` command.

Known input errors (GanSearchError) become one line on stderr and exit code 2,
with nothing written. Argument-parsing errors get the same treatment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, Sequence

from gan_search.core.config import parse_sets
from gan_search.core.results import TRAIN_CHECKPOINT
from gan_search.core.errors import ConfigError, GanSearchError
from gan_search.core.folders import check_runs_dir, make_folder
from gan_search.core.vocabulary import Status

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

DEFAULT_SPACE = "digits"
MAX_SAMPLES = 4096  # one sample grid


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _prepare(space_name: str, sets: Sequence[str], iters: int | None, data_dir: str | None) -> Any:
    """Everything checked and loaded before anything is written."""
    from gan_search.core.config import check_space_params, config_from_space
    from gan_search.core.space import load_space

    spec = load_space(space_name)
    check_space_params(spec)
    overrides: dict[str, Any] = parse_sets(sets)
    if iters is not None and iters < 1:
        raise ConfigError(f"--iters {iters}: must be >= 1")
    if iters is not None:
        overrides["iters"] = iters
    config = config_from_space(spec, overrides)
    source, options = spec.data.source, dict(spec.data.options)
    if data_dir is not None:
        source, options = "folder", {"path": data_dir}
    return spec, config, source, options


def cmd_train(args: argparse.Namespace) -> int:
    """Train one configuration and write its checkpoint and sample grids."""
    # check every argument before the slow torch import, so a typo fails at once
    spec, config, source, options = _prepare(args.space, args.set, args.iters, args.data)
    import torch

    from gan_search.core.config import check_batch_fits
    from gan_search.engine.data import load_splits
    from gan_search.engine.trainer import GANTrainer, train_device

    device = train_device(args.device, torch.cuda.is_available())
    # the same training images a search's trials get (the held-out reference left out)
    splits = load_splits(source, config.image_size, config.channels, options,
                         spec.budget.eval_samples)
    data = splits.train
    check_batch_fits(config.batch_size, len(data.images), source)
    out = Path(args.out or Path("gan_search_runs") / "train" /
               f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}")
    trainer = GANTrainer(config, data.images, device=device)
    make_folder(out, "--out")
    print(f"training {spec.name}: {len(data.images)} training images (reference for the "
          f"scores: {splits.description}) {config.image_size}x"
          f"{config.image_size}x{config.channels} from {source}"
          f"{f' ({data.skipped} unreadable files skipped)' if data.skipped else ''}, "
          f"{config.iters} iterations on {trainer.device}; output in {out}", flush=True)
    trainer.save_grid(out / "samples" / "step_000000.png")
    started = time.perf_counter()

    def on_sync(trainer: GANTrainer, means: dict[str, float]) -> None:
        step = int(means["step"])
        if step % config.eval_every == 0 or step == config.iters:
            trainer.save_grid(out / "samples" / f"step_{step:06d}.png")
            skipped = trainer.skip_shares()
            balance = (f"  skipped: D {skipped['skipped_d']:.0%} G {skipped['skipped_g']:.0%}"
                       if trainer.balancer is not None else "")
            print(f"step {step:6d}  loss_d {means['loss_d']:.3f}  loss_g {means['loss_g']:.3f}  "
                  f"D(real) {means['d_real']:.2f}  D(fake) {means['d_fake']:.2f}{balance}",
                  flush=True)

    result = trainer.train(sync_every=min(25, config.eval_every), on_sync=on_sync)
    seconds = time.perf_counter() - started
    summary = {"space": spec.name, "source": source, "status": result.status,
               "step": result.step, "message": result.message, "seconds": round(seconds, 3),
               "iters_per_second": round(result.step / seconds, 3) if seconds else None,
               **trainer.skip_shares(), "config": config.to_dict(), "history": result.history}
    if result.status == Status.FINISHED:
        trainer.save_checkpoint(out / TRAIN_CHECKPOINT)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if result.status != Status.FINISHED:
        print(f"gan-search: trial {result.status}: {result.message}", file=sys.stderr)
        return 1
    print(f"done: {result.step} iterations in {seconds:.1f} s ({result.step / seconds:.1f} it/s); "
          f"checkpoint {out / TRAIN_CHECKPOINT}, grids in {out / 'samples'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run (or resume) a hyperparameter search over a space."""
    from gan_search import app

    check_runs_dir(args.runs_dir)
    config = app.configure(args.space, name=args.name, resume=args.resume,
                           runs_dir=args.runs_dir, storage=args.storage,
                           optuna_storage=args.optuna_storage, address=args.address,
                           trials=args.trials, iters=args.iters, concurrency=args.concurrency,
                           sets=parse_sets(args.set), seed=args.seed, data_dir=args.data,
                           strategy=args.strategy, device=args.device, confirm=args.confirm,
                           confirm_seeds=args.confirm_seeds, budget=args.budget)
    spec = config.spec
    each = "up to " * bool(config.plan and config.plan.halving)
    print(f"{'resuming' if args.resume else 'starting'} search {config.name}: {config.trials} "
          f"trials of space {spec.name} ({config.data_source}, {config.image_size}px), {each}"
          f"{config.iters} iterations each, FID-lite every {config.eval_every}, "
          f"{config.concurrency} at a time, strategy {config.strategy}", flush=True)
    outcome = app.run_search(config, resume=args.resume, tracking_uri=args.tracking_uri,
                             log=lambda line: print(line, flush=True), live=sys.stdout.isatty())
    print("\n".join(app.report(outcome, config)))
    share = outcome.logging_seconds / outcome.seconds if outcome.seconds else 0
    where = args.tracking_uri or f"gan-search ui --runs-dir {args.runs_dir} --search {outcome.name}"
    print(f"MLflow: parent run {outcome.parent_run_id} ({outcome.logging_seconds:.1f} s of "
          f"logging, {100 * share:.1f}% of the search); compare trials with: {where}")
    if outcome.interrupted:
        storage = f" --storage {args.storage}" if args.storage else ""
        if args.optuna_storage:
            storage += f" --optuna-storage {args.optuna_storage}"
        print(f"gan-search: interrupted; continue with: gan-search run --space {args.space} "
              f"--runs-dir {args.runs_dir}{storage} --resume --name {outcome.name}",
              file=sys.stderr)
        return 130
    code, line = app.exit_status(outcome)
    if line:
        print(line, file=sys.stderr)
    return code


def cmd_score(args: argparse.Namespace) -> int:
    """Score generated images against a space's real data (JSON on stdout); with --search,
    a finished search's confirmation with the FID of papers (a table)."""
    from gan_search import app

    if args.search is not None:
        if not args.standard_fid:
            raise ConfigError("--search scores a search's confirmation with the FID of papers: "
                              "add --standard-fid (its FID-lite is in the search's leaderboard)")
        table = app.score_search(args.search, n=args.n, weights=args.fid_weights,
                                 runs_dir=args.runs_dir, storage=args.storage,
                                 tracking_uri=args.tracking_uri)
        print("\n".join(app.standard_fid_lines(table)))
        return 0
    spec, config, source, options = _prepare(args.space, [], None, args.data)
    scores = app.score_images(
        args.images, spec, config, source, options, n=args.n, extractor=args.extractor,
        inception_weights=args.inception_weights, standard_fid=args.standard_fid,
        fid_weights=args.fid_weights,
        warn=lambda line: print(f"gan-search: warning: {line}", file=sys.stderr))
    print(json.dumps(scores, indent=2))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI on a runs directory's store (127.0.0.1 unless --host) and print
    (and, where a browser is at hand, open) the link to a search's trials, best first; with
    --optuna, optuna-dashboard on the searches' Optuna studies and the link to one."""
    from gan_search.tracking import ui

    if args.search is not None:
        from gan_search.hpo.driver.names import check_name

        check_name(args.search)
    if args.optuna:
        from gan_search.hpo import dashboard
        from gan_search.hpo.strategies import study

        study.check_url(args.optuna_storage)
        return dashboard.serve(study.storage_url(args.runs_dir, args.optuna_storage), args.host,
                               args.port or dashboard.DEFAULT_PORT, args.search,
                               not args.no_browser)
    if args.tracking_uri:  # a server that runs already: only the link
        return ui.show_link(args.tracking_uri, args.search, not args.no_browser)
    return ui.serve(args.runs_dir, args.host, args.port or 5000, args.search, not args.no_browser)


def cmd_sample(args: argparse.Namespace) -> int:
    """Fresh samples of a generator (a search's delivered one, a trial's best checkpoint
    in MLflow, or a file): a grid (--out) or a folder of N images (--folder)."""
    if not 1 <= args.n <= MAX_SAMPLES:
        raise ConfigError(f"--n {args.n}: must lie in 1..{MAX_SAMPLES}")
    out = Path(args.folder or args.out).expanduser()
    if args.folder is None and out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp",
                                                          ".bmp"):
        raise ConfigError(f"--out {args.out}: name an image file ending in .png, .jpg, .webp "
                          "or .bmp (or give --folder DIR for one PNG per sample)")
    make_folder(out if args.folder else out.parent, "--folder" if args.folder else "--out")
    from gan_search import app

    with app.generator_file(**_source(args)) as (path, what):
        import torch

        from gan_search.engine.export import write_images
        from gan_search.engine.models import load_generator
        from gan_search.engine.trainer import draw_noise, save_grid

        gen, config, step = load_generator(path)
    z = draw_noise(args.n, config, torch.Generator().manual_seed(args.seed), "cpu")
    with torch.no_grad():
        images = gen(z)
    if args.folder:
        write_images(images, out)
    else:
        out = save_grid(images, out, nrow=max(1, int(args.n ** 0.5)))
    print(f"wrote {args.n} samples of {what} (step {step}) to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The generator as files plain PyTorch loads (engine/export.py)."""
    out = Path(args.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {args.out}: exists and is not an empty folder; name a new one")
    make_folder(out.parent, "--out")
    from gan_search import app

    with app.generator_file(**_source(args)) as (path, what):
        from gan_search.engine.export import export_generator
        from gan_search.engine.models import load_generator

        gen, config, step = load_generator(path)
    files = export_generator(gen, config, step, out, source=what)
    print(f"exported the generator of {what} (step {step}): {files[0]} "
          f"(torch.export.load(path).module()(z)), {files[1]}")
    return 0


def _source(args: argparse.Namespace) -> dict:
    return {"search": args.search, "run": args.run, "checkpoint": args.checkpoint,
            "runs_dir": args.runs_dir, "storage": args.storage,
            "tracking_uri": args.tracking_uri}


def cmd_spaces(args: argparse.Namespace) -> int:
    from gan_search.core.space import list_spaces, load_space

    if args.name:
        print(Path(load_space(args.name).path).read_text(), end="")
        return 0
    for name in list_spaces():
        spec = load_space(name)
        print(f"{name:10s} {spec.data.source:14s} {spec.data.size:4d}px  {spec.description}")
    return 0


# run and ui: where the searches' Optuna studies are
OPTUNA_STORAGE = (("--optuna-storage",), dict(
    default=os.environ.get("GAN_SEARCH_OPTUNA_STORAGE"), metavar="URL",
    help="Optuna RDB storage of the searches' studies, one per search, named after it "
         "(default: $GAN_SEARCH_OPTUNA_STORAGE, else sqlite:///RUNS_DIR/optuna.db)"))


def _options() -> dict[str, argparse.ArgumentParser]:
    """The options several commands share, each declared once (argparse parent parsers)."""
    space = _Parser(add_help=False)  # what to train on
    space.add_argument("--space", default=DEFAULT_SPACE,
                       help=f"space name or YAML path (default: {DEFAULT_SPACE})")
    space.add_argument("--data", metavar="DIR",
                       help="a folder of images to use instead of the space's data")
    settings = _Parser(add_help=False)  # how to train
    settings.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="fix a setting, e.g. --set lr_g=0.0005 (repeatable; on run it "
                               "removes the setting from the search)")
    settings.add_argument("--iters", type=int, help="iterations (generator steps) per trial "
                                                    "(default: the space's budget)")
    store = _Parser(add_help=False)  # where the records are
    store.add_argument("--runs-dir", default="gan_search_runs",
                       help="where searches are stored (default: ./gan_search_runs)")
    store.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                       help="an MLflow tracking server instead of the embedded SQLite store in "
                            "--runs-dir (default: $MLFLOW_TRACKING_URI)")
    return {"space": space, "settings": settings, "store": store}


def build_parser() -> argparse.ArgumentParser:
    from gan_search.core.vocabulary import DEVICES, EXTRACTORS, Strategy

    parser = _Parser(prog="gan-search",
                     description="Hyperparameter search for DCGANs with Ray Tune, Optuna and MLflow.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _options()
    train = sub.add_parser("train", parents=[common["space"], common["settings"]],
                           help="train one configuration")
    train.add_argument("--out", metavar="DIR", help="output folder")
    train.add_argument("--device", default="auto",
                       help="auto (CUDA when available, the default), cpu, gpu or cuda:N")
    train.set_defaults(func=cmd_train)
    run = sub.add_parser("run", parents=[common["space"], common["settings"], common["store"]],
                         help="run a hyperparameter search over a space",
                         epilog="exit codes: 0 a trial ended usable (a warning on stderr when "
                                "some did not); 1 no trial ended usable (all failed, diverged "
                                "or collapsed); 2 bad input; 130 interrupted (--resume goes on)")
    run.add_argument("--budget", type=int, metavar="N",
                     help="total training iterations of the whole search, confirmation included "
                          "(default: the space's budget.total, if any): the search plans rungs "
                          "of successive halving, trains the winner and the baseline the final "
                          "length on fresh seeds, and delivers the winner's generator")
    run.add_argument("--trials", type=int, help="number of trials (default: the space's budget)")
    run.add_argument("--concurrency", type=int, help="trials at a time (default: the space's)")
    run.add_argument("--name", help="search name (default: SPACE-DATE-TIME)")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted search (--name, or the space's latest)")
    run.add_argument("--address", help="Ray cluster to join: auto, host:port or ray://host:port "
                                       "(default: a local Ray)")
    run.add_argument("--device", default="auto", choices=[d.value for d in DEVICES],
                     help="auto (default): the space's GPU share on a cluster (--address) or on "
                          "a machine with a GPU, else CPU; cpu: never a GPU; gpu: always one")
    run.add_argument("--confirm", type=int, default=3, metavar="K",
                     help="retrain the top K configurations (and the baseline) with fresh "
                          "seeds at the full budget and rank them by their mean (default 3; "
                          "0: off)")
    run.add_argument("--confirm-seeds", type=int, metavar="S",
                     help="fresh seeds per confirmed configuration (default 2; 1 under a budget)")
    run.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler (default 0)")
    run.add_argument("--strategy", choices=[s.value for s in Strategy],
                     help="how to search (default: the space's strategy, else tpe-asha): "
                          "tpe-asha: Optuna TPE proposes, ASHA stops the clearly worse trials "
                          "early (told to Optuna as pruned); tpe: TPE, every trial its whole "
                          "budget; gp-asha, gp: Optuna's Gaussian-process sampler instead of "
                          "TPE; random-asha, random: random search (the one to beat); "
                          "pbt: population-based training, every trial a member trained to "
                          "full length, copying better members and perturbing learning "
                          "rates, betas, label smoothing and D steps as it trains")
    run.add_argument("--storage", default=os.environ.get("GAN_SEARCH_STORAGE"),
                     help="Tune storage shared by all nodes of a cluster: s3://bucket/path or "
                          "a shared (NFS) folder (default: $GAN_SEARCH_STORAGE, which "
                          "cluster/setup-node.sh sets, else RUNS_DIR/tune)")
    run.add_argument(*OPTUNA_STORAGE[0], **OPTUNA_STORAGE[1])
    run.set_defaults(func=cmd_run)
    score = sub.add_parser("score", parents=[common["space"], common["store"]],
                           help="score generated images against a space's real data, or a "
                                "finished search's confirmation with the FID of papers")
    scored = score.add_mutually_exclusive_group(required=True)
    scored.add_argument("--images", metavar="PATH", help="folder of images, or a .npy/.pt "
                                                         "uint8 array")
    scored.add_argument("--search", metavar="NAME", help="a finished search: every fresh-seed "
                        "run of its confirmation, with --standard-fid")
    score.add_argument("--storage", default=os.environ.get("GAN_SEARCH_STORAGE"),
                       help="the search's --storage, if it used one")
    score.add_argument("--n", type=int, help="sample count N (default: the space's "
                       "eval_samples; with --search, the search's)")
    score.add_argument("--extractor", default="auto",
                       choices=[e.value for e in EXTRACTORS],
                       help="feature network (default: randconv by image size)")
    score.add_argument("--inception-weights", metavar="PATH",
                       help="torchvision inception_v3 state dict, for --extractor inception")
    score.add_argument("--standard-fid", action="store_true", help="also the FID and KID of "
                       "papers (torch-fidelity, the `fid` extra; not FID-lite's scale)")
    score.add_argument("--fid-weights", metavar="PATH", help="the FID Inception weights "
                       "(pt_inception-2015-12-05; default: torch-fidelity's cached download)")
    score.set_defaults(func=cmd_score)
    ui = sub.add_parser("ui", parents=[common["store"]],
                        help="open the MLflow UI on the search store (with --tracking-uri: "
                             "print (and open) the link to a search on that running server, "
                             "serve nothing; with --optuna: optuna-dashboard on the Optuna "
                             "studies instead)")
    ui.add_argument("--port", type=int, help="default 5000 (MLflow), 8080 (--optuna)")
    ui.add_argument("--optuna", action="store_true",
                    help="serve optuna-dashboard on the searches' Optuna studies "
                         "(--optuna-storage, else RUNS_DIR/optuna.db)")
    ui.add_argument(*OPTUNA_STORAGE[0], **OPTUNA_STORAGE[1])
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ui.add_argument("--search", metavar="NAME", help="the search to show (default: the latest)")
    ui.add_argument("--no-browser", action="store_true", help="only print the link")
    ui.set_defaults(func=cmd_ui)
    source = _Parser(add_help=False)  # which generator
    which = source.add_mutually_exclusive_group()
    which.add_argument("--search", metavar="NAME", help="a finished search's delivered generator")
    which.add_argument("--run", help="an MLflow run id of a trial, or best (the default: the "
                                     "latest search's winner)")
    which.add_argument("--checkpoint", metavar="PATH", help="a train output folder or its "
                       "checkpoint.pt, a trial's checkpoint folder or a generator.pt")
    source.add_argument("--storage", default=os.environ.get("GAN_SEARCH_STORAGE"),
                        help="the searches' --storage, if they used one")
    sample = sub.add_parser("sample", parents=[common["store"], source],
                            help="sample a grid (or a folder of images) from a generator")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--out", default="samples.png", help="the grid's image file")
    sample.add_argument("--folder", metavar="DIR", help="one PNG per sample here instead")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample)
    export = sub.add_parser("export", parents=[common["store"], source],
                            help="the generator as files plain PyTorch loads")
    export.add_argument("--out", required=True, metavar="DIR",
                        help="a new folder: generator.pt2 (torch.export) and generator.json")
    export.set_defaults(func=cmd_export)
    spaces = sub.add_parser("spaces", help="list search spaces, or print one")
    spaces.add_argument("name", nargs="?", help="a space to print")
    spaces.set_defaults(func=cmd_spaces)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except GanSearchError as err:
        print(f"gan-search: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gan-search: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
