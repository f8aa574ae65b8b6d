"""The winner as files a user takes away: ``gan-search export`` writes a generator plain
PyTorch loads (torch.export, in a process that never imports gan_search) making the same
images; ``gan-search sample`` reads a search's delivered generator, a ``train`` output or a
checkpoint, and writes a grid or a folder of N images."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from gan_search.engine.models import load_generator
from helpers import cli, space_file, tiny_space

LOAD = """
import sys, torch
program = torch.export.load(sys.argv[1]).module()
with torch.no_grad():
    torch.save(program(torch.load(sys.argv[2])), sys.argv[3])
print("gan_search" in sys.modules)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ``gan-search train`` output folder (checkpoint.pt after 20 iterations)."""
    folder = tmp_path_factory.mktemp("train")
    done = cli("train", "--space", space_file(tiny_space(), folder), "--iters", "20", "--out",
               str(folder / "out"))
    assert done.returncode == 0, done.stderr
    return folder / "out"


def test_a_train_output_exports_sampled_and_loaded_by_plain_pytorch(trained, tmp_path):
    exported = cli("export", "--checkpoint", str(trained), "--out",
                   str(tmp_path / "exported"))
    assert exported.returncode == 0, exported.stderr
    about = json.loads((tmp_path / "exported" / "generator.json").read_text())
    assert about["z"] == ["n", 8, 1, 1] and about["images"] == ["n", 3, 16, 16]
    assert about["step"] == 20 and about["config"]["g_width"] == 4
    z = torch.randn(5, 8, 1, 1, generator=torch.Generator().manual_seed(3))
    torch.save(z, tmp_path / "z.pt")
    loaded = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "exported" /
                            "generator.pt2"), str(tmp_path / "z.pt"), str(tmp_path / "x.pt")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split()[-1] == "False"  # plain torch: gan_search never imported
    gen, _, _ = load_generator(trained / "checkpoint.pt")
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "x.pt"), gen(z), atol=1e-6)

    refused = cli("export", "--checkpoint", str(trained), "--out",
                  str(tmp_path / "exported"))  # nothing overwritten
    assert refused.returncode == 2 and "not an empty folder" in refused.stderr

    images = cli("sample", "--checkpoint", str(trained / "checkpoint.pt"), "--n", "5",
                 "--folder", str(tmp_path / "images"))
    assert images.returncode == 0, images.stderr
    files = sorted((tmp_path / "images").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    assert Image.open(files[0]).size == (16, 16)


def test_sample_reads_a_searchs_delivered_generator_by_its_name(trained, tmp_path):
    delivered = tmp_path / "runs" / "tune" / "cats-1" / "delivered"
    delivered.mkdir(parents=True)
    shutil.copy(trained / "checkpoint.pt", delivered / "generator.pt")
    grid = cli("sample", "--search", "cats-1", "--runs-dir", str(tmp_path / "runs"), "--n", "4",
               "--out", str(tmp_path / "grid.png"))
    assert grid.returncode == 0, grid.stderr
    assert "search cats-1 (step 20)" in grid.stdout and (tmp_path / "grid.png").is_file()
    missing = cli("sample", "--search", "cats-2", "--runs-dir", str(tmp_path / "runs"))
    assert missing.returncode == 2 and "--search cats-2: no delivered generator" in \
        missing.stderr and len(missing.stderr.strip().splitlines()) == 1
