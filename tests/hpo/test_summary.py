"""The summary files a search leaves beside Tune's state are written by the search itself,
whether MLflow tracking is on or off."""

import json

from gan_search.core.config import search_config
from gan_search.core.results import SearchOutcome, TrialRow, pareto_front
from gan_search.core.space import parse_space
from gan_search.core.vocabulary import Status
from gan_search.hpo.driver.paths import search_folder
from gan_search.hpo.outcome.summary import write_summary
from helpers import tiny_space


def test_every_summary_file_is_written_without_any_tracker(tmp_path):
    config = search_config(parse_space(tiny_space(objectives=["fid_lite", "collapse"]), "s.yaml"),
                           runs_dir=str(tmp_path), name="untracked")
    rows = [TrialRow("a", Status.FINISHED, {"lr_g": 1e-3}, {"score": 5.0, "score_collapse": 0.2}),
            TrialRow("b", Status.STOPPED, {"lr_g": 2e-3}, {"score": 7.0, "score_collapse": 0.1}),
            TrialRow("c", Status.DIVERGED, {"lr_g": 9e-3}, {"score": 1e4, "score_collapse": 1.0})]
    pareto_front(rows, ["score", "score_collapse"])
    outcome = SearchOutcome("untracked", str(tmp_path), rows, interrupted=False, seconds=1.0,
                            score_keys=["score", "score_collapse"],
                            importances=[("lr_g", 1.0)])
    files = write_summary(outcome, config)
    folder = search_folder(config)
    assert [f.relative_to(folder).as_posix() for f in files] == [
        "leaderboard.json", "summary/leaderboard.txt", "summary/pareto_front.json",
        "summary/importances.json"]
    board = json.loads(files[0].read_text())
    assert [t["status"] for t in board["trials"]] == ["finished", "stopped", "diverged"]
    assert board["best"] == "a"
    # the space's objectives by name, and the result keys the search minimised for them
    assert (board["objectives"], board["score_keys"]) == (
        ["fid_lite", "collapse"], ["score", "score_collapse"])
    assert [p["trial_id"] for p in json.loads(files[2].read_text())] == ["a", "b"]
    assert files[1].read_text().splitlines()[1].split()[:2] == ["1", "a"]
