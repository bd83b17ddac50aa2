"""docs/workload.md's worked example (a CleanRL TD3 state_dict into a workload) runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hwmodel
from hwmodel import load_workload, nm_mask
from hwmodel.errors import NmlabError

DOC = Path(__file__).resolve().parents[1] / "docs" / "workload.md"


def _example() -> str:
    text = DOC.read_text()
    found = re.search(r"<!-- worked-example: tests/test_workload_docs.py runs this block -->\n```python\n(.*?)```", text, re.S)
    assert found, "docs/workload.md lost its worked example"
    return found.group(1)


def _cleanrl_td3(obs=11, act=3, hidden=(256, 256), seed=0, masked=True):
    """CleanRL TD3 state_dicts as numpy arrays: Actor fc1/fc2/fc_mu, QNetwork fc1/fc2/fc3 on obs+act."""
    rng = np.random.default_rng(seed)

    def net(names, dims):
        sd = {}
        for name, (i, o) in zip(names, zip(dims[:-1], dims[1:])):
            w = rng.standard_normal((o, i))
            sd[f"{name}.weight"] = np.where(nm_mask(w, "2:4"), w, 0).astype(np.float32) if masked else w.astype(np.float32)
            sd[f"{name}.bias"] = rng.standard_normal(o).astype(np.float32)
        return sd

    return (net(["fc1", "fc2", "fc_mu"], [obs, *hidden, act]),
            net(["fc1", "fc2", "fc3"], [obs + act, *hidden, 1]),
            net(["fc1", "fc2", "fc3"], [obs + act, *hidden, 1]))


def test_worked_example_writes_a_workload_that_simulates_both_scenarios(tmp_path, monkeypatch):
    actor_sd, qf1_sd, qf2_sd = _cleanrl_td3()
    monkeypatch.chdir(tmp_path)
    exec(_example(), {"actor_sd": actor_sd, "qf1_sd": qf1_sd, "qf2_sd": qf2_sd, "masks": {}})
    wl = load_workload(tmp_path / "my_hopper_2of4.nmw")
    assert wl.networks == ["actor", "critic1", "critic2"]
    assert [(x.name, x.in_features, x.out_features) for x in wl.network("critic1")] == [
        ("critic1.fc1", 14, 256), ("critic1.fc2", 256, 256), ("critic1.fc3", 256, 1)]
    assert {x.pattern for x in wl.layers} == {"2:4"}
    np.testing.assert_array_equal(wl.layers[2].weight, actor_sd["fc_mu.weight"])
    np.testing.assert_array_equal(wl.layers[0].bias, actor_sd["fc1.bias"])
    assert wl.meta == {"env": "Hopper-v5", "method": "my-sr-ste", "seed": 0}
    inf = hwmodel.simulate(wl, "edge_ws")
    assert [r.name for r in inf.layers] == ["actor.fc1", "actor.fc2", "actor.fc_mu"]
    assert inf.speedup_vs_dense > 1  # a 2:4 unit runs the 2:4 masks sparse
    step = hwmodel.simulate(wl, "edge_ws", scenario="train_step", batch=256)
    assert {"actor", "critic1", "critic2", "actor_target"} <= {r.network for r in step.layers}
    out = subprocess.run([sys.executable, "-m", "hwmodel.cli", "workload", "my_hopper_2of4.nmw"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "critic1.fc1" in out.stdout, out.stderr


def test_worked_example_with_own_masks_and_unpruned_float64_weights(tmp_path, monkeypatch):
    # weights as trained (dense, float64: nonzero where the mask is 0), masks given separately
    actor_sd, qf1_sd, qf2_sd = _cleanrl_td3(masked=False)
    actor_sd = {k: v.astype(np.float64) for k, v in actor_sd.items()}
    masks = {f"{net}.{k[:-7]}": nm_mask(v, "2:4") for net, sd in (("actor", actor_sd), ("critic1", qf1_sd), ("critic2", qf2_sd))
             for k, v in sd.items() if k.endswith(".weight")}
    monkeypatch.chdir(tmp_path)
    exec(_example(), {"actor_sd": actor_sd, "qf1_sd": qf1_sd, "qf2_sd": qf2_sd, "masks": masks})
    wl = load_workload(tmp_path / "my_hopper_2of4.nmw")
    np.testing.assert_array_equal(wl.layers[1].mask, masks["actor.fc2"])
    np.testing.assert_array_equal(wl.layers[1].weight, (actor_sd["fc2.weight"] * masks["actor.fc2"]).astype(np.float32))


def test_worked_example_refuses_a_mask_that_is_not_2of4(tmp_path, monkeypatch):
    actor_sd, qf1_sd, qf2_sd = _cleanrl_td3(masked=False)  # unpruned: w != 0 keeps everything
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NmlabError, match=r"layer 'actor.fc1': mask: row 0 group 0 keeps more than 2 of 4"):
        exec(_example(), {"actor_sd": actor_sd, "qf1_sd": qf1_sd, "qf2_sd": qf2_sd, "masks": {}})
    assert not list(tmp_path.iterdir())
