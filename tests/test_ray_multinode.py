"""`nmlab sweep --ray ADDRESS` on a cluster of several nodes (simulated on this machine by
tests/raycluster_sim.py: every worker node has a /tmp of its own, as another machine has)."""

from __future__ import annotations

import pytest

from tests import raycluster_sim

# A cluster starts and stops in about 10 s.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not raycluster_sim.can_isolate_tmp(),
                                 reason="needs Linux user + mount namespaces (unshare) for a node's own /tmp")]


def test_a_sweep_on_a_cluster_leaves_no_input_copies_on_the_other_nodes(tmp_path):
    """The workers on a node other than the driver's copied the shipped workloads and designs into
    that node's /tmp and nobody removed them (Ray ends its workers without their exit handlers):
    one folder more per worker node and sweep, there for good."""
    import ray

    from sweeps import api, store
    from tests.test_sweep_engine import fake_evaluate, shipped_evaluate, write_config

    cfg = write_config(tmp_path, patterns=["dense", "2:4"], bits=[8], chunk_size=4)
    with raycluster_sim.cluster(worker_cpus=(1,)) as (address, (node_tmp,)):
        api.run(cfg, tmp_path / "ray", use_ray=True, ray_address=address, evaluate=shipped_evaluate, progress=False)
        assert not ray.is_initialized()
        left = sorted(p.name for p in node_tmp.glob("nmlab-ray-inputs-*"))
    assert left == [], f"input copies left on the worker node: {left}"

    api.run(cfg, tmp_path / "local", workers=1, evaluate=fake_evaluate, progress=False)
    assert store.read_table(tmp_path / "ray").to_pandas().equals(store.read_table(tmp_path / "local").to_pandas())
