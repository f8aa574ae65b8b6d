"""The FID of papers for a finished search (``gan-search score --search NAME
--standard-fid``): every fresh-seed run of its confirmation scored by torch-fidelity, on a
weights file of the standard FID network that the test makes (random weights), ranked,
written beside the confirmation and logged on the search's MLflow run."""

import json
from pathlib import Path

import pytest

from helpers import TINY, cli, random_fid_weights
from gan_search.core.results import GENERATOR_FILE
from gan_search.engine.data import load_splits
from gan_search.engine.metrics.standard import standard_scores
from gan_search.engine.models import load_generator
from gan_search.engine.trainer import generate
from gan_search.hpo.outcome.standard_fid import score_confirmation, table_lines

pytest.importorskip("torch_fidelity")  # the `fid` extra (in `test`)
N = 10  # samples per run: Inception at 299 px is slow on a CPU


def test_a_finished_searchs_confirmation_gets_the_fid_of_papers(tracked, tmp_path):
    runs, outcome, client, (parent,), _ = tracked
    weights = random_fid_weights(tmp_path / "fid.pth")
    scored = cli("score", "--search", "tracked-search", "--standard-fid", "--fid-weights",
                 str(weights), "--runs-dir", str(runs), "--n", str(N))
    assert scored.returncode == 0, scored.stderr
    table = json.loads((runs / "tune" / "tracked-search" / "confirm" /
                        "standard_fid.json").read_text())
    # every fresh-seed run of every confirmed configuration, the baseline's included
    assert {r["trial_id"] for c in table["candidates"] for r in c["runs"]} == \
        {r["trial_id"] for c in outcome.confirmation for r in c.runs}
    assert [c["baseline"] for c in table["candidates"]].count(True) == 1
    means = [c["fid_mean"] for c in table["candidates"]]
    assert means == sorted(means) and table["candidates"][0]["rank"].startswith("1")

    # a run's FID: its generator's N images from noise seed 0, as torch-fidelity scores them
    winner = outcome.confirmation[0]
    run = winner.runs[0]
    generator, config, _ = load_generator(Path(run["checkpoint"]) / GENERATOR_FILE)
    data = TINY["data"]  # the tracked search's (conftest.py), with 100 eval_samples
    reference = load_splits(data["source"], data["size"], data["channels"], data["options"],
                            100).reference.images[:N]
    expected = standard_scores(generate(generator, config, N, seed=0), reference, weights)
    mine = next(r for c in table["candidates"] for r in c["runs"]
                if r["trial_id"] == run["trial_id"])
    assert mine["fid"] == pytest.approx(expected["fid"], rel=1e-5)
    assert mine["kid_standard"] == pytest.approx(expected["kid_standard"], rel=1e-4, abs=1e-7)

    # logged on the search's parent run: the winner's and the baseline's means, the table
    logged = client.get_run(parent.info.run_id).data.metrics
    of = {c["trial_id"]: c for c in table["candidates"]}
    baseline = next(c for c in table["candidates"] if c["baseline"])
    assert logged["standard_fid"] == pytest.approx(of[winner.trial_id]["fid_mean"])
    assert logged["standard_fid_baseline"] == pytest.approx(baseline["fid_mean"])
    assert "confirm/standard_fid.json" in \
        {f.path for f in client.list_artifacts(parent.info.run_id, "confirm")}
    assert winner.trial_id in scored.stdout and "(baseline)" in scored.stdout


def test_a_run_with_no_generator_counts_as_the_worst(tracked, tmp_path):
    """A fresh-seed run that failed before its first checkpoint has nothing to score: its
    configuration ranks last, as a broken run does in the confirmation. A checkpoint on
    remote storage (here a file:// URI, through the same pyarrow filesystem as s3://) is
    fetched and scored."""
    runs, outcome, *_ = tracked
    summary = json.loads((runs / "tune" / "tracked-search" / "leaderboard.json").read_text())
    summary["confirmation"][0]["runs"][0]["checkpoint"] = None  # the winner's run: none
    remote = summary["confirmation"][1]["runs"][0]
    remote["checkpoint"] = Path(remote["checkpoint"]).as_uri()
    brightness = []  # a cheap stand-in score: the images' mean, so the ranking is known

    def score(images):
        brightness.append(images.float().mean().item())
        return {"fid": brightness[-1], "kid_standard": 0.0}

    table = score_confirmation(summary, tmp_path, score, N, {"reference": "r", "weights": "w"})
    ranked = [c["trial_id"] for c in table["candidates"]]
    assert ranked[-1] == outcome.confirmation[0].trial_id
    assert table["candidates"][-1]["fid_mean"] is None
    assert [c["fid_mean"] for c in table["candidates"][:-1]] == sorted(brightness)
    assert (tmp_path / "confirm" / "standard_fid.json").is_file()
    assert table_lines(table)[-1].startswith("(-: a run had no generator")


@pytest.mark.parametrize("args,says", [
    (["--search", "tracked-search"], "add --standard-fid"),
    (["--search", "no-such-search", "--standard-fid"], "no finished search"),
    (["--search", "tracked-search", "--images", "x"], "not allowed with argument"),
])
def test_scoring_a_search_refuses_bad_input_in_one_line(tracked, args, says):
    runs, *_ = tracked
    refused = cli("score", "--runs-dir", str(runs), *args)
    assert refused.returncode == 2 and says in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
