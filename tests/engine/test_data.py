"""Dataset sources on real images made here (downloads cannot run on this machine)."""

import struct
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image

from gan_search.engine.data import sources as data_mod
from gan_search.engine.data import decode_pet_cats, load_dataset, resize_array
from gan_search.core.errors import DataError


def test_digits_are_the_1797_sklearn_images_upscaled_with_labels():
    data = load_dataset("digits", 16, 1)
    assert data.images.shape == (1797, 1, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.shape == (1797,) and set(data.labels.tolist()) == set(range(10))
    assert data.images.max() > 200 and data.images.min() == 0
    colour = load_dataset("digits", 28, 3)
    assert colour.images.shape == (1797, 3, 28, 28)
    assert torch.equal(colour.images[:, 0], colour.images[:, 1])  # grey copied to RGB


def test_dataset_is_cached_and_reloaded_identically(isolated_cache, monkeypatch):
    before = set((isolated_cache / "datasets").glob("*.pt"))
    first = load_dataset("fake", 16, 3, {"n": 50})
    new = set((isolated_cache / "datasets").glob("*.pt")) - before
    assert len(new) == 1 and next(iter(new)).name.startswith("fake-16px-c3-")
    # the second load reads the cache: the source is not decoded again
    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setitem(data_mod.SOURCES, "fake", data_mod.Source(no_decoding, ("n", "classes", "seed")))
    second = load_dataset("fake", 16, 3, {"n": 50})
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    monkeypatch.undo()
    other = load_dataset("fake", 16, 3, {"n": 60})  # other options -> other cache entry
    assert len(other.images) == 60


def test_fake_is_deterministic_and_class_structured():
    a = load_dataset("fake", 32, 3, {"n": 200, "classes": 4, "seed": 3})
    b = data_mod._load_fake(32, 3, {"n": 200, "classes": 4, "seed": 3}, None)[0]
    assert torch.equal(a.images, b)
    means = [a.images[a.labels == c].float().mean(0) for c in range(4)]
    # images of one class look alike, and unlike other classes
    within = (a.images[a.labels == 0].float() - means[0]).abs().mean()
    between = (means[0] - means[1]).abs().mean()
    assert between > within


def make_images(folder, count, size=(50, 40), colour=(200, 30, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, colour).save(folder / f"img{i}.{['png', 'jpg', 'webp', 'bmp'][i % 4]}")


def test_folder_reads_images_recursively_and_counts_unreadable(tmp_path):
    make_images(tmp_path / "a", 3)
    make_images(tmp_path / "a" / "deeper", 2, size=(30, 60))
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    data = load_dataset("folder", 32, 3, {"path": str(tmp_path / "a")})
    assert data.images.shape == (5, 3, 32, 32)
    assert data.skipped == 1 and data.labels is None
    red = data.images[:, 0].float().mean().item()
    assert red == pytest.approx(200, abs=3)     # JPEG/WebP are lossy, PNG/BMP exact
    grey = load_dataset("folder", 16, 1, {"path": str(tmp_path / "a")})
    assert grey.images.shape == (5, 1, 16, 16)


def test_folder_cache_notices_new_files(tmp_path):
    make_images(tmp_path / "b", 2)
    assert len(load_dataset("folder", 16, 3, {"path": str(tmp_path / "b")}).images) == 2
    make_images(tmp_path / "b" / "more", 3)
    assert len(load_dataset("folder", 16, 3, {"path": str(tmp_path / "b")}).images) == 5


def test_folder_centre_crops_before_resizing(tmp_path):
    image = np.zeros((20, 60, 3), np.uint8)
    image[:, 20:40] = 255  # the centre square is white, the sides black
    (tmp_path / "c").mkdir()
    Image.fromarray(image).save(tmp_path / "c" / "wide.png")
    data = load_dataset("folder", 8, 1, {"path": str(tmp_path / "c")})
    assert data.images.float().mean() > 250


@pytest.mark.parametrize("setup,message", [
    (lambda p: p.mkdir(), "has no images"),
    (lambda p: None, "does not exist"),
    (lambda p: (p.mkdir(), (p / "x.png").write_bytes(b"garbage")), "none of its 1 image files"),
])
def test_folder_errors(tmp_path, setup, message):
    folder = tmp_path / "d"
    setup(folder)
    with pytest.raises(DataError, match=message):
        load_dataset("folder", 16, 3, {"path": str(folder)})


def test_unknown_source_and_option_are_refused_with_the_valid_ones():
    with pytest.raises(DataError, match=r"unknown dataset source 'imagenet'; valid sources are: digits"):
        load_dataset("imagenet", 32, 3)
    with pytest.raises(DataError, match=r"not an option of source 'cifar10'; valid options are: split, classes"):
        load_dataset("cifar10", 32, 3, {"class": "cat"})


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_loads_through_torchvision_from_local_files(isolated_cache):
    raw = isolated_cache / "raw" / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    data = load_dataset("mnist", 28, 1)
    assert data.images.shape == (30, 1, 28, 28) and data.classes[0].startswith("0")
    both = load_dataset("mnist", 28, 1, {"split": "all", "classes": [3, 5]})
    assert len(both.images) == 8 and set(both.labels.tolist()) == {0, 1}  # relabelled


def test_cifar_style_arrays_filter_classes_and_resize():
    classes = ("airplane", "automobile", "bird", "cat", "deer")
    images = np.zeros((10, 32, 32, 3), np.uint8)
    images[3::5, :, :, 2] = 250  # the cats are blue
    labels = np.arange(10) % 5
    keep = data_mod._class_filter("cifar10", {"classes": ["cat"]}, classes)
    out, out_labels, out_classes, _ = data_mod._array_source(
        "cifar10", 16, 3, [(images, labels)], classes, keep)
    assert out.shape == (2, 3, 16, 16) and out_classes == ("cat",)
    assert out[:, 2].float().mean() == pytest.approx(250, abs=1) and out[:, 0].max() == 0
    with pytest.raises(DataError, match="valid classes: airplane"):
        data_mod._class_filter("cifar10", {"classes": ["cats"]}, classes)


def test_resize_array_accepts_channel_last_and_channel_first():
    last = np.full((2, 10, 10, 3), 7, np.uint8)
    first = np.full((2, 3, 10, 10), 7, np.uint8)
    assert torch.equal(resize_array(last, 8, 3), resize_array(first, 8, 3))


def test_download_failure_is_one_clear_line(monkeypatch, isolated_cache):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", 28, 1)
    message = str(info.value)
    assert "\n" not in message
    assert "could not get dataset 'fashion-mnist' into" in message
    assert "Name or service not known" in message and "put the files there by hand" in message
    assert not list((isolated_cache / "datasets").glob("fashion-mnist*"))  # nothing cached


def make_pet_folder(base):
    """A miniature Oxford-IIIT Pet layout: two cats (one with a head box, one with only
    a trimap) and one dog."""
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "xmls").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    # cat with head box: white head at (20..60, 10..50) in a 100 x 80 dark image
    head = np.zeros((80, 100, 3), np.uint8)
    head[10:50, 20:60] = 255
    Image.fromarray(head).save(base / "images" / "Bengal_1.jpg", quality=95)
    box = ET.Element("annotation")
    bnd = ET.SubElement(ET.SubElement(box, "object"), "bndbox")
    for key, value in (("xmin", 20), ("ymin", 10), ("xmax", 60), ("ymax", 50)):
        ET.SubElement(bnd, key).text = str(value)
    ET.ElementTree(box).write(base / "annotations" / "xmls" / "Bengal_1.xml")
    # cat without xml: foreground (trimap == 1) at rows 40..70, cols 5..35, painted green
    body = np.zeros((80, 100, 3), np.uint8)
    body[40:70, 5:35, 1] = 255
    Image.fromarray(body).save(base / "images" / "Sphynx_2.jpg", quality=95)
    trimap = np.full((80, 100), 2, np.uint8)
    trimap[40:70, 5:35] = 1
    Image.fromarray(trimap).save(base / "annotations" / "trimaps" / "Sphynx_2.png")
    Image.fromarray(np.full((80, 100, 3), 128, np.uint8)).save(base / "images" / "beagle_3.jpg")
    (base / "annotations" / "trainval.txt").write_text(
        "Bengal_1 6 1 1\nbeagle_3 13 2 3\n")
    (base / "annotations" / "test.txt").write_text("Sphynx_2 33 1 12\n")


def test_cats_are_cropped_to_head_box_or_foreground(tmp_path):
    make_pet_folder(tmp_path / "oxford-iiit-pet")
    images, labels, classes, skipped = decode_pet_cats(tmp_path / "oxford-iiit-pet", 16, 3)
    assert images.shape == (2, 3, 16, 16) and classes == ("cat",) and skipped == 0
    # sorted ids: Bengal_1 (head crop: all white), Sphynx_2 (foreground crop: all green)
    assert images[0].float().mean() > 240
    assert images[1, 1].float().mean() > 240 and images[1, 0].float().mean() < 15


def test_cats_source_goes_through_torchvision_with_local_files(isolated_cache):
    make_pet_folder(isolated_cache / "raw" / "cats" / "oxford-iiit-pet")
    data = load_dataset("cats", 16, 3)
    assert data.images.shape == (2, 3, 16, 16) and data.labels.tolist() == [0, 0]


def test_the_reference_is_held_out_from_training():
    """A seeded share, the same every time, disjoint from the training images."""
    from gan_search.engine.data import Dataset, hold_out

    images = torch.arange(200, dtype=torch.int64).view(200, 1, 1, 1)
    data = Dataset(images, torch.arange(200) % 4, ("a", "b", "c", "d"))
    train, reference = hold_out(data, eval_samples=100)
    assert len(reference.images) == 50 and len(train.images) == 150  # capped at a quarter
    ids = lambda d: set(d.images.flatten().tolist())  # noqa: E731
    assert not ids(train) & ids(reference) and ids(train) | ids(reference) == set(range(200))
    assert torch.equal(hold_out(data, 100)[1].images, reference.images)
    assert torch.equal(reference.labels, reference.images.flatten() % 4)  # labels follow
    assert len(hold_out(data, eval_samples=30)[1].images) == 30
    with pytest.raises(DataError, match="too few to hold out"):
        hold_out(Dataset(images[:30], None, ()), 100)


def test_copies_of_training_images_do_not_score_better_than_held_out_real_images():
    """A generator that memorised its training set must not beat real data it never saw:
    both are real samples the reference did not contain, so they score alike (before the
    reference was held out, training copies scored FID-lite 0 and coverage 1)."""
    from gan_search.engine.data import load_splits
    from gan_search.engine.metrics import Evaluator

    splits = load_splits("fake", 16, 3, {"n": 1200, "classes": 4}, 300)
    evaluator = Evaluator(splits.reference, n=300, train=splits.train)  # 600 generated: 2 x N
    copies = evaluator.score(splits.train.images[:600])
    unseen = evaluator.score(load_dataset("fake", 16, 3, {"n": 600, "classes": 4, "seed": 1}).images)
    assert copies["fid_lite"] >= 0.5 * unseen["fid_lite"] > 0  # seen: 0.24 and 0.21
    assert copies["coverage"] <= unseen["coverage"] + 0.02
    digits = load_splits("digits", 16, 1, {}, 400)
    assert "held-out 22% of digits (400 of 1,797 images)" in digits.description
    scores = Evaluator.for_splits(digits, 400).score(digits.train.images[:800])  # as a search's
    assert scores["fid_lite"] > 1.0 and scores["coverage"] < 0.97  # seen: 2.79 and 0.915


def test_sources_with_a_test_split_are_scored_against_it(tmp_path, monkeypatch):
    from gan_search.engine.data import load_splits

    calls = []

    def split_aware(size, channels, options, root):
        calls.append(options.get("split", "train"))
        n = 300 if options.get("split") == "test" else 900
        return data_mod._load_fake(size, channels, {"n": n, "seed": len(calls)}, root)

    monkeypatch.setitem(data_mod.SOURCES, "mnist", data_mod.Source(split_aware, ("split", "classes"), test_split=True))
    splits = load_splits("mnist", 16, 1, {}, 2000)
    assert calls == ["test", "train"] and len(splits.reference.images) == 300
    assert len(splits.train.images) == 900 and "mnist test split (300 images)" in splits.description
    assert splits.reference_key != splits.train_key


def test_the_training_part_of_a_held_out_split_has_a_classifier_of_its_own(tmp_path, monkeypatch):
    """A classifier cached by an evaluation of the whole set (its held-out images included)
    is not the one a search's evaluator loads for its training part: each is trained on
    what it is meant for, whichever ran first."""
    from gan_search.engine.data import dataset_key, load_splits
    from gan_search.engine.metrics import Evaluator

    monkeypatch.setenv("GAN_SEARCH_CACHE", str(tmp_path))
    options = {"n": 200, "classes": 4}
    whole = Evaluator(load_dataset("fake", 16, 1, options), n=40,
                      dataset_key=dataset_key("fake", 16, 1, options))
    splits = load_splits("fake", 16, 1, options, 40)
    search = Evaluator.for_splits(splits, 40)
    assert splits.train_key not in (dataset_key("fake", 16, 1, options), splits.reference_key)
    assert len(list((tmp_path / "classifiers").glob("*.pt"))) == 2
    again = Evaluator.for_splits(splits, 40)  # the training part's, from the cache
    for mine, cached in zip(search.classifier.model.state_dict().values(),
                            again.classifier.model.state_dict().values()):
        assert torch.equal(mine, cached)
    assert whole.classifier is not None
