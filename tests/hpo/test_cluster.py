"""Scale-out: cluster.yaml checked by Ray's own config preparation and schema; a real
multi-node Ray cluster on this machine (head + 2 workers, one advertising a GPU) runs a
search across nodes, and survives losing a worker mid-search."""

import os

import optuna
import pytest
import yaml

from helpers import run_cli, search_runs, space_file, tiny_space, write_space

pytestmark = pytest.mark.cluster
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_cluster_files_pass_rays_validation_and_run_the_same_node_scripts(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(ROOT, name)) as f:
        raw = yaml.safe_load(f)
    config = prepare_config(raw)
    validate_config(config)  # raises on any schema violation
    for node_type in config["available_node_types"].values():  # Ray needs whole numbers
        assert all(isinstance(v, int) for v in node_type["resources"].values())
    # what a node runs lives in cluster/*.sh, the same for both files
    setup = " ".join(config["setup_commands"])
    assert "bash ~/gan-search/cluster/setup-node.sh " in setup
    assert config["head_start_ray_commands"] == ["bash ~/gan-search/cluster/start-head.sh"]
    assert config["worker_start_ray_commands"] == [
        "bash ~/gan-search/cluster/start-worker.sh $RAY_HEAD_IP"]
    assert config["file_mounts"]["~/gan-search"] == "."
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    if name == "cluster.yaml":
        types = config["available_node_types"]
        workers = [t for n, t in types.items() if n != config["head_node_type"]]
        assert any(t["resources"].get("GPU", 0) >= 1 and t["min_workers"] == 0 for t in workers)
        assert types[config["head_node_type"]]["resources"].get("CPU") == 0  # trials off the head
        assert config["docker"]["image"].startswith("rayproject/ray:2.60.0-py311")


def test_ray_prepares_the_aws_file_and_every_node_may_write_the_s3_storage(monkeypatch):
    """`ray up cluster.yaml` as far as it goes without an AWS account: Ray's own AWS
    bootstrap (boto3, from the `aws` extra) against moto's in-process EC2 and IAM. The head
    gets the instance profile Ray creates (EC2 and S3 access); the GPU workers, which write
    the trials' checkpoints to `--storage s3://...`, name the same profile."""
    import copy

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    import boto3
    from moto import mock_aws
    from ray.autoscaler._private.aws import config as aws
    from ray.autoscaler._private.util import prepare_config

    monkeypatch.setattr(aws.time, "sleep", lambda seconds: None)  # IAM's propagation wait
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        raw = yaml.safe_load(f)
    with mock_aws():
        region = raw["provider"]["region"]
        ec2 = boto3.client("ec2", region_name=region)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for node_type in raw["available_node_types"].values():  # the file's is a placeholder
            node_type["node_config"]["ImageId"] = image
        config = aws.bootstrap_aws(copy.deepcopy(prepare_config(raw)))
        iam = boto3.client("iam", region_name=region)
        head = config["head_node"]["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]
        worker = config["available_node_types"]["gpu_worker"]["node_config"]
        assert worker["IamInstanceProfile"] == {"Name": head}
        role = iam.get_instance_profile(InstanceProfileName=head)["InstanceProfile"]["Roles"][0]
        policies = iam.list_attached_role_policies(RoleName=role["RoleName"])
        assert "AmazonS3FullAccess" in {p["PolicyName"] for p in policies["AttachedPolicies"]}
        for node_type in config["available_node_types"].values():  # network and key filled in
            assert node_type["node_config"]["SubnetIds"] and node_type["node_config"]["KeyName"]


def test_node_scripts_install_pinned_and_keep_mlflow_and_the_dashboard_on_loopback():
    import subprocess

    scripts = {n: open(os.path.join(ROOT, "cluster", n)).read()
               for n in ("setup-node.sh", "start-head.sh", "start-worker.sh")}
    for name in scripts:
        subprocess.run(["bash", "-n", os.path.join(ROOT, "cluster", name)], check=True)
    assert 'pip install -q -e "$project"' in scripts["setup-node.sh"]
    assert "GAN_SEARCH_STORAGE" in scripts["setup-node.sh"]
    assert "mlflow server --host 127.0.0.1" in scripts["start-head.sh"]
    assert "--dashboard-host=127.0.0.1" in scripts["start-head.sh"]


SPACE = tiny_space(name="nodes",
                   parameters={"lr_g": {"kind": "loguniform", "low": 1e-4, "high": 1e-2},
                               "lr_d": {"kind": "loguniform", "low": 1e-4, "high": 1e-2}},
                   fixed={"z_dim": 8, "batch_size": 32, "g_width": 8, "d_width": 8})


@pytest.fixture(scope="module")
def cluster():
    """One local multi-node cluster for the module's tests: a head with no CPU for trials,
    a CPU worker and a worker that advertises a GPU."""
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1, num_gpus=1)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def search(tmp_path, name, trials, iters, eval_every, **config):
    from gan_search.core.config import search_config

    raw = {**SPACE, "budget": {"trials": trials, "iters": iters, "eval_every": eval_every,
                               "eval_samples": 64}}
    return search_config(write_space(raw, tmp_path, "nodes"), runs_dir=str(tmp_path),
                         name=name, confirm=0, **config)


DOOMED: dict = {}  # the worker to pull, from which step on, and what replaces it
REPORTED_FROM: set[str] = set()  # the nodes trials reported from


def _watch_doomed_node():
    """A Tune callback (module level: Tune pickles its callbacks) that notes the nodes
    trials report from and, once a trial on the doomed node has saved a checkpoint at
    DOOMED["after_step"] or later, replaces that node (here, in Tune's loop: Ray starts a
    node only from the main thread)."""
    from ray.tune import Callback

    class WatchDoomedNode(Callback):
        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            result = trial.last_result or {}
            REPORTED_FROM.add(result.get("node_id"))
            if result.get("node_id") == DOOMED["node_id"] and "new" not in DOOMED and \
                    result.get("step", 0) >= DOOMED["after_step"]:
                DOOMED["new"] = DOOMED["replace"]()

        def __reduce__(self):
            return (_watch_doomed_node, ())

    return WatchDoomedNode()


def run_losing_a_worker(ray_cluster, workers, config, after_step=40):
    """Run a search; once a trial on the first worker has a checkpoint at ``after_step`` or
    later, pull that worker, and a new one joins in its place (as the autoscaler starts one
    for a lost node), so that the module's cluster is whole again afterwards."""
    from gan_search.app import run_search

    doomed = workers[0]

    def replace():
        ray_cluster.remove_node(doomed, allow_graceful=False)
        return ray_cluster.add_node(num_cpus=1)

    DOOMED.clear()
    DOOMED.update(node_id=doomed.node_id, after_step=after_step, replace=replace)
    REPORTED_FROM.clear()
    outcome = run_search(config, log=print, callbacks=[_watch_doomed_node()])
    assert "new" in DOOMED, "the doomed worker was never pulled"
    workers[0] = DOOMED["new"]
    ray_cluster.wait_for_nodes()
    # both first workers (and maybe the new one), never the head
    assert {doomed.node_id, workers[1].node_id} <= REPORTED_FROM <= \
        {doomed.node_id, *(w.node_id for w in workers)}
    return outcome


def test_a_search_spreads_over_the_workers_and_survives_losing_one(cluster, tmp_path):
    """The head offers no CPU and each worker one: two trials at a time run one on each
    worker. Once a trial on one worker has a checkpoint past step 40 that worker is pulled:
    FailureConfig(max_failures=3) retries its trial from its latest checkpoint on a node
    that is up, and MLflow holds every trial once, every evaluation once."""
    ray_cluster, workers = cluster
    doomed = workers[0]
    outcome = run_losing_a_worker(ray_cluster, workers, search(
        tmp_path, "fault", trials=4, iters=120, eval_every=20))
    print([(r.trial_id, r.status, r.metrics.get("resumed_from_step")) for r in outcome.rows])
    assert len(outcome.rows) == 4 and len({r.trial_id for r in outcome.rows}) == 4
    assert all(r.status == "finished" for r in outcome.rows), [(r.status, r.error) for r in outcome.rows]
    retried = [r for r in outcome.rows if r.metrics["resumed_from_step"] > 0]
    print(f"trials retried from a checkpoint: {len(retried)} "
          f"(from steps {[r.metrics['resumed_from_step'] for r in retried]})")
    assert retried, "the trial on the removed node should have been restored from its checkpoint"
    assert all(r.metrics["node_id"] != doomed.node_id for r in retried)
    client, _, children = search_runs(str(tmp_path), "fault")
    assert sorted(c.data.tags["gan_search.trial_id"] for c in children) == \
        sorted(r.trial_id for r in outcome.rows)
    for child in children:  # no evaluation step logged twice, none missing
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "fid_lite")]
        assert sorted(steps) == list(range(20, 121, 20)), steps


def test_a_pbt_search_survives_losing_a_worker(cluster, tmp_path):
    """PBT with a worker pulled mid-search (after its member's first checkpoint, so that two
    of the three perturbation intervals come after): the member there is retried from its
    latest checkpoint (its own or one it copied) on a worker that is up; the population
    stays the four members it was and every one trains to the end. (With Tune's actor
    reuse, a paused member was handed its old actor on the lost node and failed: on a
    cluster PBT starts a new actor each time.)"""
    ray_cluster, workers = cluster
    doomed = workers[0].node_id
    outcome = run_losing_a_worker(ray_cluster, workers, search(
        tmp_path, "fault-pbt", trials=4, iters=60, eval_every=20, strategy="pbt",
        address=ray_cluster.address), after_step=20)  # a cluster search, as `--address` makes
    assert len({r.trial_id for r in outcome.rows}) == len(outcome.rows) == 4
    assert all(r.status == "finished" and r.metrics["step"] == 60 for r in outcome.rows), \
        [(r.status, r.error) for r in outcome.rows]
    assert all(r.metrics["node_id"] != doomed for r in outcome.rows)
    _, _, children = search_runs(str(tmp_path), "fault-pbt")
    assert sorted(c.data.tags["gan_search.trial_id"] for c in children) == \
        sorted(r.trial_id for r in outcome.rows)


def test_a_trial_that_fails_for_its_own_reasons_fails_once_and_says_why(cluster, tmp_path):
    """On a cluster the search asks for the space's GPU share; the worker advertises a GPU
    but has no CUDA device, so every trial fails with that message, once (not retried
    3 times like a lost node), and MLflow says why."""
    from gan_search.app import run_search
    from gan_search.core.config import search_config

    ray_cluster, _ = cluster
    raw = {**SPACE, "resources": {"cpu": 1, "gpu": 0.5}}
    config = search_config(write_space(raw, tmp_path, "nodes"), runs_dir=str(tmp_path),
                           name="no-cuda", address=ray_cluster.address, confirm=0)
    lines = []
    outcome = run_search(config, log=lines.append)
    assert [r.status for r in outcome.rows] == ["failed", "failed"]
    assert all("torch sees no CUDA device there" in r.error for r in outcome.rows)
    # the stored study says so too: failed, not scored (TPE learns nothing from an error)
    study = optuna.load_study(study_name="no-cuda", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [(t.state.name, t.user_attrs["status"]) for t in study.trials] == \
        [("FAIL", "failed"), ("FAIL", "failed")]
    for row in outcome.rows:  # started once: a retry would start it again
        assert sum(f"trial {row.trial_id} started" in line for line in lines) == 1, lines
    _, _, children = search_runs(str(tmp_path), "no-cuda")
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FAILED" and child.data.tags["gan_search.status"] == "failed"
        assert "torch sees no CUDA device there" in child.data.tags["gan_search.message"]


def test_an_autoscaling_cluster_adds_gpu_workers_and_every_trial_runs_on_one(tmp_path):
    """The documented cluster: a head without a GPU and a GPU worker type with min_workers 0
    (Ray's fake multi-node provider on this machine). A space asking for gpu 0.5 must make
    the autoscaler add GPU workers and put every trial there, not on the CPU of the head."""
    import json

    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

    from ray_head import RayHead

    raw = {**SPACE, "name": "gpuspace", "resources": {"cpu": 1, "gpu": 0.5},
           "budget": {"trials": 3, "iters": 40, "eval_every": 20, "eval_samples": 64}}
    space = space_file(raw, tmp_path, "gpuspace")
    # the fake workers' "GPUs" are resource labels: trials on them train on the CPU
    head = RayHead(num_cpus=1, autoscaling=True, extra_env={"GAN_SEARCH_FAKE_GPU": "1"})
    try:
        result = run_cli("run", "--space", space, "--address",
                         head.address, "--runs-dir", str(tmp_path / "runs"), "--name", "scaled",
                         "--confirm", "0",
                         env=head.env, timeout=400)
    finally:
        assert head.stop() == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = json.loads((tmp_path / "runs" / "tune" / "scaled" / "leaderboard.json")
                        .read_text())["trials"]
    nodes = {t["metrics"]["node_id"] for t in trials}
    print(f"trials per node: { {n[-5:]: sum(t['metrics']['node_id'] == n for t in trials) for n in nodes} }")
    assert [t["status"] for t in trials] == ["finished"] * 3
    assert FAKE_HEAD_NODE_ID not in nodes and all(n.startswith("fffffff") for n in nodes)
    assert all(t["metrics"]["gpu_share"] == 0.5 for t in trials)
