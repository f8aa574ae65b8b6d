"""Where trials run: the resources each trial asks Ray for, from the space and --device,
never from what a cluster happens to have when the search starts."""

import pytest

from helpers import cli
from gan_search.core.errors import ConfigError
from gan_search.hpo.driver.placement import place_trials
from gan_search.core.space import Resources

GPU_SPACE, CPU_SPACE = Resources(cpu=2, gpu=0.5), Resources(cpu=1, gpu=0)


@pytest.mark.parametrize("resources,device,on_cluster,local_gpus,expected", [
    # auto on a cluster: the space's GPU share, even when no GPU node is up yet (autoscaler)
    (GPU_SPACE, "auto", True, 0, {"cpu": 2, "gpu": 0.5}),
    # auto on the private local Ray: a GPU only when this machine has one
    (GPU_SPACE, "auto", False, 1, {"cpu": 2, "gpu": 0.5}),
    (GPU_SPACE, "auto", False, 0, {"cpu": 2}),
    (CPU_SPACE, "auto", True, 0, {"cpu": 1}),
    # cpu never asks; gpu always asks (a whole GPU for a space without a share)
    (GPU_SPACE, "cpu", True, 4, {"cpu": 2}),
    (GPU_SPACE, "gpu", False, 1, {"cpu": 2, "gpu": 0.5}),
    (CPU_SPACE, "gpu", True, 0, {"cpu": 1, "gpu": 1.0}),
])
def test_trials_ask_for_what_the_space_and_device_say(resources, device, on_cluster, local_gpus,
                                                      expected):
    assert place_trials(resources, device, on_cluster, local_gpus).resources() == expected


def test_a_laptop_without_a_gpu_runs_a_gpu_space_on_cpu_with_a_note():
    placement = place_trials(GPU_SPACE, "auto", on_cluster=False, local_gpus=0)
    assert placement.gpu == 0 and "no CUDA GPU; trials run on CPU" in placement.note
    assert place_trials(GPU_SPACE, "auto", on_cluster=True, local_gpus=0).note is None


def test_gpu_where_no_gpu_can_come_is_refused():
    with pytest.raises(ConfigError, match="--device gpu: this machine has no CUDA GPU"):
        place_trials(CPU_SPACE, "gpu", on_cluster=False, local_gpus=0)
    with pytest.raises(ConfigError, match="--device tpu: expected one of auto, cpu, gpu"):
        place_trials(CPU_SPACE, "tpu", on_cluster=True, local_gpus=0)


@pytest.mark.parametrize("args,message", [
    (["--device", "gpu"], "--device gpu: this machine has no CUDA GPU"),
    (["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
])
def test_run_device_bad_input_is_one_line_exit_2_and_starts_nothing(tmp_path, args, message):
    import torch

    if torch.cuda.is_available() and args[1] == "gpu":
        pytest.skip("this machine has a GPU")
    result = cli("run", "--space", "smoke", "--runs-dir", str(tmp_path / "runs"), *args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()
