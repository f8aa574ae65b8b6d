"""Metric building blocks against independent references, the extractor's identity,
real-statistics caching, the optional Inception extractor and `gan-search score`."""

import json
import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from helpers import cli
from gan_search.engine.data import Dataset, load_dataset
from gan_search.core.errors import DataError
from gan_search.engine.metrics import Evaluator, RandConv, frechet_distance, gaussian_stats, kid, ndb_k, prdc
from gan_search.engine.metrics.collapse import class_metrics, collapse_score, kmeans
from gan_search.engine.metrics.distances import frechet_with_noise, matrix_sqrt
from gan_search.engine.metrics.evaluator import generated_for
from gan_search.engine.metrics.features import InceptionFeatures, default_extractor, embed


def test_frechet_distance_matches_the_scipy_sqrtm_formula():
    rng = np.random.RandomState(0)
    a, b = rng.randn(400, 30), rng.randn(300, 30) @ rng.randn(30, 30) * 0.3 + 0.5
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert isinstance(value, float) and value == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_closed_form_and_singular_covariances():
    # 1-D: N(0, 1) vs N(1, 4): 1 + 1 + 4 - 2 * 2 = 2
    assert frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)) == pytest.approx(2)
    # rank-deficient covariances (fewer samples than dimensions) stay real and >= 0
    rng = np.random.RandomState(1)
    x = rng.randn(20, 100)
    mu, sigma = gaussian_stats(x)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)


def test_fid_noise_is_estimated_from_the_samples_it_scores():
    """FID-lite's noise (the reference fixed) agrees with the standard deviation over
    independent generated sets, for narrow and wide generators at two sample counts: an
    estimate that ignored the samples (a constant, or the reference's spread) could not."""
    rng = np.random.RandomState(0)
    mu, sigma = gaussian_stats(rng.randn(300, 20))
    root = matrix_sqrt(sigma)
    for scale in (0.8, 1.5):
        for m in (200, 800):
            drawn = [frechet_with_noise(mu, root, rng.randn(m, 20) * scale + 0.2)
                     for _ in range(60)]
            empirical = np.std([value for value, _ in drawn], ddof=1)
            assert np.median([noise for _, noise in drawn]) == pytest.approx(empirical, rel=0.3)


def test_the_evaluator_reports_the_noise_of_its_own_samples(isolated_cache):
    data = load_dataset("digits", 16, 1)
    evaluator = Evaluator(Dataset(data.images[:300], None, ()), n=200)
    assert evaluator.generated == 400  # FID-lite: 2 x N generated images against N real
    assert [generated_for(n) for n in (100, 400, 1500, 2000, 3000)] == [200, 800, 2000, 2000, 3000]
    scores = evaluator.score(data.images[300:700])
    assert scores["fid_lite_generated"] == 400 and scores["fid_lite_n"] == 200
    features = embed(evaluator.extractor, data.images[300:700])
    ref = evaluator.reference
    assert scores["fid_lite"] == pytest.approx(frechet_distance(
        ref["mu"], ref["sigma"], *gaussian_stats(features)), rel=1e-6)
    assert scores["fid_lite_std"] == pytest.approx(
        frechet_with_noise(ref["mu"], ref["root"], features)[1], rel=1e-9)
    blurred = evaluator.score(data.images[700:1100] // 2)  # another generator, another noise
    assert 0 < scores["fid_lite_std"] < scores["fid_lite"]
    assert blurred["fid_lite_std"] != pytest.approx(scores["fid_lite_std"], rel=0.05)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.RandomState(2)
    x, y = rng.randn(40, 6), rng.randn(40, 6) + 0.3
    k = lambda a, b: (a @ b / 6 + 1) ** 3
    m = 40
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert kid(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    same = [kid(rng.randn(200, 6), rng.randn(200, 6)) for _ in range(20)]
    assert abs(np.mean(same)) < 0.01  # unbiased: scatters around 0


def test_prdc_extremes():
    rng = np.random.RandomState(3)
    real = rng.randn(200, 8)
    same = prdc(real, real.copy())
    assert same["precision"] == 1 and same["recall"] == 1 and same["coverage"] == 1
    far = prdc(real, real + 100)
    assert far["precision"] == 0 and far["coverage"] == 0 and far["density"] == 0


def test_prdc_tells_precision_from_recall():
    """Samples from one small corner of the real data are all realistic (precision high)
    but cover little of it (recall and coverage low); samples spread over the real data
    and far beyond it are the opposite."""
    rng = np.random.RandomState(5)
    real = rng.randn(400, 2)
    corner = real[np.argsort(real[:, 0])[:40]]  # the 10% of real points furthest left
    narrow = prdc(real, corner[rng.randint(len(corner), size=200)] + rng.randn(200, 2) * 0.01)
    assert narrow["precision"] > 0.9 and narrow["recall"] < 0.3 and narrow["coverage"] < 0.3
    wide = prdc(real, rng.randn(400, 2) * 3)
    assert wide["recall"] > 0.8 and wide["precision"] < 0.6


def test_ndb_and_kmeans():
    rng = np.random.RandomState(4)
    blobs = np.concatenate([rng.randn(100, 2) * 0.1 + c for c in ([0, 0], [5, 5], [0, 5])])
    centroids = kmeans(blobs, 3)
    assert sorted(np.round(np.sort(centroids, axis=0)[:, 0]).tolist()) == [0, 0, 5]
    counts = np.array([100, 100, 100])
    assert ndb_k(counts, counts) == 0
    assert ndb_k(counts, np.array([300, 0, 0])) == 1


def test_class_metrics_and_collapse_bounds():
    real_hist = np.full(10, 0.1)
    all_classes = class_metrics(np.arange(1000) % 10, real_hist)
    assert all_classes == {"classes_found": 10, "class_kl": pytest.approx(0, abs=1e-12)}
    one = class_metrics(np.zeros(1000, dtype=int), real_hist)
    assert one["classes_found"] == 1 and one["class_kl"] == pytest.approx(np.log(10))
    assert collapse_score(1 - 2 ** -5, 0.05, 10, 10)["collapse"] == 0
    assert collapse_score(0.0, 1.0, 1, 10)["collapse"] == 1
    assert "collapse_classes" not in collapse_score(0.5, 0.5)


def test_randconv_weights_are_the_same_on_every_machine():
    """Derived from NumPy's frozen RandomState stream: these digests pin them exactly."""
    assert RandConv(32).weights_sha256() == RANDCONV32_SHA256
    assert RandConv(64).weights_sha256() == RANDCONV64_SHA256
    assert RandConv(32).name == "randconv32-v1" and RandConv(32).dim == 704
    images = torch.arange(2 * 3 * 32 * 32).remainder(251).to(torch.uint8).view(2, 3, 32, 32)
    features = RandConv(32)(images)
    assert features.shape == (2, 704)
    assert features.sum().item() == pytest.approx(RANDCONV32_FEATURE_SUM, rel=1e-4)


RANDCONV32_SHA256 = "de0da9745a6ce54117148991942e43760b3ed85a3623590aa89a6767c121870b"
RANDCONV64_SHA256 = "f7c619f3417d0f05ed8ebb06f7093c97615a95b670b3d79ac65ba25a305384fe"
RANDCONV32_FEATURE_SUM = 557.0272


def test_default_extractor_by_size():
    assert default_extractor(16) == "randconv32" and default_extractor(40) == "randconv32"
    assert default_extractor(64) == "randconv64" and default_extractor(128) == "randconv64"


def test_real_statistics_and_classifier_are_cached(isolated_cache):
    data = load_dataset("fake", 16, 3, {"n": 120, "classes": 3})
    first = Evaluator(data, n=100, dataset_key="fake-test-key", generated=100)
    stats = list((isolated_cache / "stats").glob("fake-test-key-randconv32-v1-n100.pt"))
    classifiers = list((isolated_cache / "classifiers").glob("fake-test-key-*.pt"))
    assert len(stats) == 1 and len(classifiers) == 1
    stamp = (stats[0].stat().st_mtime_ns, classifiers[0].stat().st_mtime_ns)
    second = Evaluator(data, n=100, dataset_key="fake-test-key", generated=100)
    assert (stats[0].stat().st_mtime_ns, classifiers[0].stat().st_mtime_ns) == stamp
    sample = data.images[20:120]
    a, b = first.score(sample), second.score(sample)
    a.pop("eval_seconds"), b.pop("eval_seconds")
    assert a == b


def test_the_classifier_stops_once_it_classifies_every_held_out_image():
    """Easy data stops at the first check with every held-out image right; data it cannot
    get all right (labels that are noise) trains every step it was given."""
    from gan_search.engine.metrics.classifier import train_classifier

    data = load_dataset("fake", 16, 3, {"n": 120, "classes": 3})
    easy = train_classifier(data.images, data.labels, 3, steps=200, check_every=50)
    assert easy.accuracy == 1.0 and easy.steps == 50
    noise = torch.randint(3, (len(data.labels),), generator=torch.Generator().manual_seed(1))
    hard = train_classifier(data.images, noise, 3, steps=100, check_every=50)
    assert hard.accuracy < 1.0 and hard.steps == 100


def test_evaluator_refuses_wrong_shapes_and_too_few_images():
    data = load_dataset("fake", 16, 3, {"n": 60})
    evaluator = Evaluator(Dataset(data.images, None, ()), n=50)
    with pytest.raises(ValueError, match="need at least 100 generated"):
        evaluator.score(data.images[:10])
    with pytest.raises(ValueError, match="expected uint8 images of shape"):
        evaluator.score(data.images[:, :1])


def test_inception_offline_fails_with_one_clear_line(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    import torch.hub

    monkeypatch.setattr(torch.hub, "urlopen", offline)  # the download itself, no network
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")  # no cached copy either
    with pytest.raises(DataError, match="could not download them .* --inception-weights PATH") as info:
        InceptionFeatures()
    assert "\n" not in str(info.value)


def test_inception_from_a_local_weights_file(tmp_path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    state = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save(state, tmp_path / "inception.pt")
    extractor = InceptionFeatures(tmp_path / "inception.pt")
    features = extractor(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert features.shape == (2, 2048) and extractor.name.startswith("inception-v3-")
    # the name keys the cached real statistics: another weights file, another key
    state["fc.bias"] += 1
    torch.save(state, tmp_path / "other.pt")
    assert InceptionFeatures(tmp_path / "other.pt").name != extractor.name
    assert InceptionFeatures(tmp_path / "inception.pt").name == extractor.name
    with pytest.raises(DataError, match="does not exist"):
        InceptionFeatures(tmp_path / "missing.pt")


def test_score_command_prints_json_for_a_folder_and_an_array(tmp_path):
    digits = load_dataset("digits", 16, 1).images
    folder = tmp_path / "generated"
    folder.mkdir()
    for i in range(100):  # FID-lite compares 2 x N generated images with N real ones
        Image.fromarray(digits[i, 0].numpy()).resize((32, 32)).save(folder / f"{i}.png")
    result = cli("score", "--space", "digits", "--images", str(folder), "--n", "50")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["fid_lite_n"] == 50 and scores["fid_lite_extractor"] == "randconv32-v1"
    assert 0 <= scores["collapse"] <= 1 and scores["classes_found"] >= 5
    assert "warning" in result.stderr and "32x32" in result.stderr  # resized, and said so
    np.save(tmp_path / "gen.npy", digits[:100].numpy())
    result = cli("score", "--images", str(tmp_path / "gen.npy"), "--n", "50")
    assert result.returncode == 0 and json.loads(result.stdout)["fid_lite"] >= 0