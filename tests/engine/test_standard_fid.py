"""The FID of papers through torch-fidelity (``score --standard-fid``): on a weights file
of the standard FID network that the test makes (its architecture, random weights), the
command's FID and KID are what torch-fidelity computes by itself from folders of the same
images; without weights, one line saying where to get them."""

import json

import pytest
import torch

from gan_search.engine.data import load_splits
from gan_search.engine.export import write_images
from helpers import cli, random_fid_weights, space_file, tiny_space

torch_fidelity = pytest.importorskip("torch_fidelity")  # the `fid` extra (in `test`)


def generated_folder(tmp_path, count=20):
    images = torch.randint(0, 256, (count, 3, 16, 16), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    write_images(images.float() / 127.5 - 1, tmp_path / "generated")
    return tmp_path / "generated"


@pytest.mark.slow  # Inception at 299 px on 60 images, twice: minutes on 2 CPU cores
def test_the_commands_fid_is_torch_fidelitys_own_on_the_same_images(tmp_path):
    raw = tiny_space(budget={"eval_samples": 10})
    space = space_file(raw, tmp_path)
    generated_folder(tmp_path)
    weights = random_fid_weights(tmp_path / "fid.pth")
    scored = cli("score", "--space", space, "--images", str(tmp_path / "generated"),
                 "--standard-fid", "--fid-weights", str(weights))
    assert scored.returncode == 0, scored.stderr
    mine = json.loads(scored.stdout)

    reference = load_splits("fake", 16, 3, raw["data"]["options"], 10).reference.images[:10]
    write_images(reference.float() / 127.5 - 1, tmp_path / "reference")
    theirs = torch_fidelity.calculate_metrics(
        input1=str(tmp_path / "generated"), input2=str(tmp_path / "reference"), fid=True,
        kid=True, kid_subset_size=10, feature_extractor_weights_path=str(weights),
        cuda=False, verbose=False, cache=False)
    assert mine["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert mine["kid_standard"] == pytest.approx(theirs["kernel_inception_distance_mean"],
                                                 rel=1e-4, abs=1e-6)
    assert mine["fid_lite"] != pytest.approx(mine["fid"])  # two scores, two scales


def test_without_weights_the_standard_fid_says_where_to_get_them(tmp_path, monkeypatch):
    space = space_file(tiny_space(budget={"eval_samples": 10}), tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))  # offline, none cached
    refused = cli("score", "--space", space, "--images", str(generated_folder(tmp_path)),
                  "--standard-fid")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "weights-inception-2015-12-05" in refused.stderr and "--fid-weights" in refused.stderr
