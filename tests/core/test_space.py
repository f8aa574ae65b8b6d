"""The search-space model: loading, validation messages (file and key), defaults."""

import textwrap

import pytest

from gan_search.core.config import TrainConfig, check_space_params, config_from_space
from gan_search.core.errors import ConfigError, SpaceError
from gan_search.core.space import list_spaces, load_space

GOOD = """
name: t
data: {source: fake, size: 16, channels: 3}
parameters:
  lr_g: {kind: loguniform, low: 1e-4, high: 1e-2}
  beta1: {kind: uniform, low: 0.1, high: 0.5}
  g_width: {kind: int, low: 4, high: 9}
  kernel_size: {kind: choice, values: [4, 5], default: 5}
fixed: {z_dim: 8}
budget: {trials: 3, iters: 10, eval_every: 5}
"""


def write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_are_given_defaults_else_midpoints(tmp_path):
    spec = load_space(write(tmp_path, GOOD))
    config = config_from_space(spec)
    assert config.lr_g == pytest.approx(1e-3)           # geometric middle of a log range
    assert config.beta1 == pytest.approx(0.3)
    assert config.g_width == 6                           # round((4 + 9) / 2)
    assert config.kernel_size == 5                       # the given default
    assert config.z_dim == 8 and config.iters == 10 and config.eval_every == 5
    assert (config.image_size, config.channels) == (16, 3)


def test_overrides_win_and_are_type_converted(tmp_path):
    spec = load_space(write(tmp_path, GOOD))
    config = config_from_space(spec, {"lr_g": "0.005", "batch_norm": "false", "g_width": "12"})
    assert config.lr_g == 0.005 and config.batch_norm is False and config.g_width == 12


@pytest.mark.parametrize("snippet,message", [
    ("data: {source: fake, size: 16}\nbogus: 1\n", r"space.yaml: bogus: unknown key; valid keys are: name"),
    ("data: {source: fake, size: 16, colour: 3}\n", r"data.colour: unknown key"),
    ("data: {source: fake}\nparameters:\n  lr_g: {kind: uniform, low: 0.5, high: 0.1}\n",
     r"parameters.lr_g: low <= high must hold, but got low=0.5, high=0.1"),
    ("data: {source: fake}\nparameters:\n  lr_g: {kind: loguniform, low: 0, high: 0.1}\n",
     r"parameters.lr_g.low: a log range needs low > 0"),
    ("data: {source: fake}\nparameters:\n  g_width: {kind: choice, values: []}\n",
     r"parameters.g_width.values: a choice needs a non-empty list"),
    ("data: {source: fake}\nparameters:\n  g_width: {kind: normal, low: 1, high: 2}\n",
     r"parameters.g_width.kind: unknown kind 'normal'; valid kinds are: uniform, loguniform, int, choice"),
    ("data: {source: fake}\nparameters:\n  g_width: {kind: int, low: 1.5, high: 2}\n",
     r"parameters.g_width: an int parameter needs whole-number bounds"),
    ("data: {source: fake}\nparameters:\n  lr_g: {kind: uniform, low: 0.1, high: 0.2, default: 0.9}\n",
     r"parameters.lr_g.default: 0.9 is outside \[0.1, 0.2\]"),
    ("data: {source: fake, channels: 2}\n", r"data.channels: must be 1 \(grey\) or 3"),
    ("data: {source: fake}\nobjectives: [fid]\n", r"objectives: unknown objective 'fid'"),
    ("data: {source: fake}\nresources: {gpu: 1.5}\n", r"resources.gpu: must be a fraction"),
    ("data: {source: fake}\nbudget: {trials: 0}\n", r"budget.trials: expected a whole number >= 1"),
    ("data: {source: fake}\nconcurrency: two\n", r"concurrency: expected a whole number"),
    ("data: [1, 2\n", r"not valid YAML"),
    ("parameters: {}\n", r"data.source: missing"),
    ("data: {source: fake}\nstrategy: grid\n",
     r"strategy: unknown strategy 'grid'; valid: tpe-asha, tpe, gp-asha, gp, random-asha, random"),
    ("data: {source: fake}\nstrategy: tpe\nscheduler: {kind: asha}\n",
     r"scheduler.kind: 'asha' contradicts strategy 'tpe'; drop scheduler.kind"),
])
def test_bad_space_files_name_the_file_and_key(tmp_path, snippet, message):
    path = write(tmp_path, snippet)
    with pytest.raises(SpaceError, match=message):
        load_space(path)


@pytest.mark.parametrize("snippet,message", [
    ("parameters:\n  lr_gen: {kind: uniform, low: 0.1, high: 0.2}\n",
     r"parameters.lr_gen: unknown setting; valid settings are: .*lr_g"),
    ("fixed: {zdim: 3}\n", r"fixed.zdim: unknown setting"),
    ("parameters:\n  kernel_size: {kind: choice, values: [3, 4]}\n",
     r"parameters.kernel_size: kernel_size=3 is invalid: must be 4 or 5"),
    ("parameters:\n  lr_d: {kind: uniform, low: 0.1, high: 2.0}\n",
     r"parameters.lr_d: lr_d=2.0 is invalid"),
    ("fixed: {image_size: 30}\n", r"image_size=30 cannot be made"),
])
def test_space_names_must_be_trial_settings(tmp_path, snippet, message):
    path = write(tmp_path, "data: {source: fake, size: 16}\n" + snippet)
    with pytest.raises(ConfigError, match=message):
        check_space_params(load_space(path))


@pytest.mark.parametrize("snippet,strategy", [
    ("", "tpe-asha"),  # the default
    ("strategy: random\n", "random"),
    ("strategy: gp-asha\n", "gp-asha"),
    ("strategy: random-asha\nscheduler: {grace_period: 2}\n", "random-asha"),
    ("scheduler: {kind: none}\n", "tpe"),  # the older spelling still reads as it meant
    ("scheduler: {kind: asha}\n", "tpe-asha"),
])
def test_the_strategy_says_how_to_search(tmp_path, snippet, strategy):
    from gan_search.core.vocabulary import Strategy

    spec = load_space(write(tmp_path, "data: {source: fake}\n" + snippet))
    assert spec.strategy == strategy
    assert Strategy(strategy).sampler in ("tpe", "gp", "random")
    assert (Strategy(strategy).scheduler == "asha") == strategy.endswith("-asha")


def test_unknown_space_lists_the_known_ones():
    with pytest.raises(SpaceError, match=r"unknown space 'kittens'; known spaces: .*digits"):
        load_space("kittens")


def test_shipped_spaces_include_every_seed_use():
    assert {"digits", "cats", "mnist", "svhn", "cifar10", "faces", "smoke"} <= set(list_spaces())


def test_unknown_train_config_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"--set: unknown setting 'lr'; valid settings are: image_size"):
        TrainConfig.from_dict({"lr": 1}, source="--set")


@pytest.mark.parametrize("key,value", [("lr_g", "fast"), ("g_width", "1.5"), ("batch_norm", "maybe"),
                                       ("lr_d", "nan"), ("z_dim", True)])
def test_wrong_types_are_refused_with_an_example(key, value):
    with pytest.raises(ConfigError, match=rf"{key}=.* is not a valid .* \(e.g. {key}="):
        TrainConfig.from_dict({key: value}, source="--set")
