"""What a search delivers: the confirmed winner's generator, or the baseline's when no
configuration beat it, as files a user takes away (hpo/outcome/deliver.py)."""

import json
from pathlib import Path

import torch

from gan_search.core.config import SearchConfig, TrainConfig
from gan_search.core.results import SearchOutcome, TrialRow
from gan_search.core.space import parse_space
from gan_search.engine.trainer import GANTrainer
from gan_search.hpo.outcome.confirm import Candidate, ranked
from gan_search.hpo.outcome.deliver import deliver
from gan_search.hpo.outcome.report import budget_lines
from helpers import tiny_space


def checkpoint(folder: Path, lr_g: float, seed: int, iters: int = 8) -> str:
    """A real trial checkpoint folder (trainer, generator, grid) after ``iters`` steps."""
    config = TrainConfig.from_dict({"image_size": 16, "channels": 1, "g_width": 4, "d_width": 4,
                                    "z_dim": 8, "batch_size": 8, "iters": iters, "seed": seed,
                                    "lr_g": lr_g})
    images = torch.randint(0, 255, (32, 1, 16, 16), dtype=torch.uint8)
    trainer = GANTrainer(config, images, device="cpu")
    trainer.train(iters)
    folder.mkdir(parents=True)
    trainer.save_generator(folder / "generator.pt")
    trainer.save_grid(folder / "samples.png")
    return str(folder)


def confirmed(tmp_path: Path, base_scores: list, winner_scores: list) -> SearchOutcome:
    """A search's outcome whose confirmation ran the winner and the baseline on two seeds."""
    rows = [TrialRow("win", "finished", {"lr_g": 1e-3}, {"score": 1.0, "step": 40}),
            TrialRow("base", "finished", {"lr_g": 2e-4}, {"score": 3.0, "step": 40},
                     baseline=True)]
    outcome = SearchOutcome("s", str(tmp_path), rows, interrupted=False, seconds=1.0)
    candidates = [Candidate("win", {"lr_g": 1e-3}), Candidate("base", {"lr_g": 2e-4}, True)]
    for candidate, scores in zip(candidates, (winner_scores, base_scores)):
        for seed, score in zip((1001, 1002), scores):
            run = f"{candidate.trial_id}-{seed}"
            path = checkpoint(tmp_path / "confirm" / run, candidate.params["lr_g"], seed)
            settings = {**candidate.params, "seed": seed, "iters": 160}
            outcome.confirm_rows.append(TrialRow(
                run, "finished", {"confirm": {"of": candidate.trial_id, "settings": settings}},
                {"score": score, "step": 160, "best_step": 120}, checkpoint=path))
            candidate.runs.append({"trial_id": run, "status": "finished", "seed": seed,
                                   "score": score, "checkpoint": path, "std": 0.01})
    outcome.confirmation = ranked(candidates)
    return outcome


def config(tmp_path: Path) -> SearchConfig:
    raw = tiny_space(baseline={"name": "paper", "values": {"lr_g": 2e-4},
                               "sources": {"lr_g": "t"}})
    return SearchConfig(parse_space(raw, str(tmp_path / "tiny.yaml")), 2, 40, 20, 64, 2, {},
                        str(tmp_path), "s")


def test_the_confirmed_winners_best_run_is_delivered(tmp_path):
    outcome = confirmed(tmp_path, base_scores=[3.0, 3.2], winner_scores=[1.5, 1.1])
    folder = deliver(outcome, tmp_path / "search")
    about = json.loads((folder / "delivered.json").read_text())
    assert about["run"] == "win-1002" and not about["baseline"]  # its better fresh run
    assert about["settings"] == {"lr_g": 1e-3, "seed": 1002, "iters": 160}
    assert (folder / "generator.pt").read_bytes() == \
        (Path(about["checkpoint"]) / "generator.pt").read_bytes()
    state = torch.load(folder / "generator.pt", weights_only=True)
    assert state["config"]["seed"] == 1002 and (folder / "samples.png").is_file()


def test_a_search_whose_best_is_the_baseline_delivers_the_baseline_and_says_so(tmp_path):
    outcome = confirmed(tmp_path, base_scores=[1.0, 1.2], winner_scores=[1.5, 1.9])
    found = deliver(outcome, tmp_path / "search")
    outcome.delivered = str(found)
    about = json.loads((found / "delivered.json").read_text())
    assert about["baseline"] and about["configuration"] == "base" and about["run"] == "base-1001"
    state = torch.load(found / "generator.pt", weights_only=True)
    assert state["config"]["lr_g"] == 2e-4 and state["config"]["seed"] == 1001
    line = budget_lines(outcome, config(tmp_path))[-1]
    assert line.startswith("delivered: the baseline's generator: no configuration the search "
                           "found beat it, run base-1001") and line.endswith(str(found))
    # delivered again (a resumed search): the folder is replaced whole, never mixed
    outcome.confirmation = ranked([c for c in outcome.confirmation if not c.baseline])
    again = deliver(outcome, tmp_path / "search")
    assert again == found and not json.loads((again / "delivered.json").read_text())["baseline"]
    assert not list((tmp_path / "search").glob(".delivered-*"))
