"""`nmlab sweep --ray ADDRESS` and `nmlab campaign --ray ADDRESS` on a cluster of several nodes
(simulated on this machine by tests/raycluster_sim.py: every worker node has a /tmp of its own, as
another machine has). The commands run as child processes, as a user runs them: a driver in this
process would carry the Ray settings of the instances earlier tests started here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import raycluster_sim
from tests.conftest import repo_env

# A cluster starts and stops in about 10 s.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not raycluster_sim.can_isolate_tmp(),
                                 reason="needs Linux user + mount namespaces (unshare) for a node's own /tmp")]


def _nmlab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = repo_env()
    for key in ("RAY_ADDRESS", *raycluster_sim.AUTH_VARS):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-m", "hwmodel", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_a_sweep_on_a_cluster_leaves_no_input_copies_on_the_other_nodes(tmp_path):
    """The workers on a node other than the driver's copied the shipped workloads and designs into
    that node's /tmp and nobody removed them (Ray ends its workers without their exit handlers):
    one folder more per worker node and sweep, there for good."""
    from tests.test_sweep_cli import config

    cfg = config(tmp_path, patterns=["dense", "2:4"], bits=[8], chunk_size=4)
    with raycluster_sim.cluster(worker_cpus=(1,)) as (address, (node_tmp,), _):
        run = _nmlab("sweep", str(cfg), "--out", str(tmp_path / "ray"), "--ray", address, "--quiet")
        assert run.returncode == 0, run.stderr[-3000:]
        left = sorted(p.name for p in node_tmp.glob("nmlab-ray-inputs-*"))
    assert left == [], f"input copies left on the worker node: {left}"

    run = _nmlab("sweep", str(cfg), "--out", str(tmp_path / "local"), "--workers", "1", "--quiet")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "ray" / "points.parquet").read_bytes() == (tmp_path / "local" / "points.parquet").read_bytes()


CAMPAIGN = ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 300\nquality_bits: [32]\n"
            "quality_episodes: 1\ntrain: {learning_starts: 100, batch_size: 32, hidden: 32, eval_every: 300, "
            "eval_episodes: 1}\n")


def test_a_campaign_on_a_cluster_refuses_a_dir_a_node_does_not_see(tmp_path):
    """A campaign whose DIR a worker node does not see trained its runs into that node's own disk,
    said `done hopper_dense_s0`, then showed the run as `new` (0 steps) and exited 0: the driver's
    DIR held nothing, and a second invocation "trained" it again there."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    with raycluster_sim.cluster(worker_cpus=(1,)) as (address, _, shared):
        run = _nmlab("campaign", str(cfg), "--out", str(tmp_path / "c"), "--ray", address)
        assert run.returncode == 2, run.stdout + run.stderr[-3000:]
        err = run.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"nmlab campaign: error: --out: {tmp_path / 'c'} is not on storage "
                                                   "every node of the Ray cluster sees (1 node(s) do not: "), err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"], "nothing written, no probe left"

        # DIR on storage every node sees: the run trains there, where the driver finds it.
        run = _nmlab("campaign", str(cfg), "--out", str(shared / "c"), "--ray", address)
        assert run.returncode == 0, run.stdout + run.stderr[-3000:]
        assert "done hopper_dense_s0: 300 steps" in run.stdout and "300/300" in run.stdout, run.stdout
        assert (shared / "c" / "hopper_dense_s0" / "done.json").is_file()
        assert [p.name for p in shared.glob(".nmlab-campaign-probe-*")] == []


def test_a_cluster_without_a_cpu_is_one_line_not_a_wait_forever(tmp_path):
    """A cluster whose nodes have no CPU (a head started with --num-cpus=0 before any worker node
    joined): the sweep sat at 0% and the campaign at 0 steps, silently, until killed."""
    from tests.test_sweep_cli import config

    cfg = config(tmp_path, patterns=["dense"], bits=[8])
    camp = tmp_path / "c.yaml"
    camp.write_text(CAMPAIGN)
    with raycluster_sim.cluster(worker_cpus=(), head_cpus=0) as (address, _, shared):
        for command, out in (("sweep", tmp_path / "o"), ("campaign", shared / "c")):
            args = [str(cfg if command == "sweep" else camp), "--out", str(out), "--ray", address]
            # A wait forever meets the timeout.
            run = _nmlab(command, *args, *(["--quiet"] if command == "sweep" else []), timeout=60)
            err = [line for line in run.stderr.strip().splitlines() if "points left out" not in line]
            assert run.returncode == 2 and err == [
                f"nmlab {command}: error: --ray: the Ray cluster at {address} has no CPU (its 1 node(s) alive have none): "
                "Ray would hold every task until a node with CPUs joins; start one (`ray start --address=HEAD:PORT`), "
                "or give an autoscaling cluster one at its minimum, then run the same command"], run.stderr[-3000:]
            assert not out.exists(), "nothing written"
