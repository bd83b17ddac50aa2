"""GPUs as design points of simulate, sweep and check (hwmodel/gpu/design_point.py)."""

import subprocess
import sys

import numpy as np
import pytest

from hwmodel.design import bundled_designs, load_design
from hwmodel.errors import NmlabError
from hwmodel.gpu import design_point as dp
from hwmodel.gpu.model import predict, weight_bytes
from hwmodel.gpu.spec import bundled_gpus, gpu_for
from hwmodel.simulate import simulate
from hwmodel.sparsity import nm_mask, random_mask
from hwmodel.workload import Layer, Workload

NMLAB = [sys.executable, "-m", "hwmodel"]


def _td3(pattern_of, width=256, seed=0):
    """A small TD3 workload (obs 11, act 3) whose hidden layers carry ``pattern_of(shape, rng)`` masks."""
    rng = np.random.default_rng(seed)
    layers = []
    for net, dims in (("actor", (11, width, width, 3)), ("critic1", (14, width, width, 1)), ("critic2", (14, width, width, 1))):
        for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
            pattern, mask = pattern_of((n, k), rng) if i == 1 else ("dense", None)
            layers.append(Layer(f"{net}.fc{i + 1}", net, k, n, pattern, mask, 16))
    return Workload(layers=layers, meta={"env": "hopper"})


def _nm(text):
    return lambda shape, rng: (text, nm_mask(rng.standard_normal(shape).astype(np.float32), text))


def _unstructured(sparsity):
    return lambda shape, rng: ("unstructured", random_mask(shape, sparsity, rng))


def _model_us(spec, r, dtype):
    """The GPU model's own time for a layer's GEMM (kernel time, cold L2), called directly."""
    return predict(spec, r.m, r.k, r.n, dtype, r.hw_pattern == "2:4", dp.model_params(spec), l2="cold") * 1e6


@pytest.mark.parametrize("bits,dtype", [(16, "bfloat16"), (8, "int8")])
@pytest.mark.parametrize("scenario,batch", [("inference", 1), ("train_step", 256)])
def test_latency_is_the_gpu_models_per_layer_sum(bits, dtype, scenario, batch):
    spec = gpu_for("h100_sxm")
    res = simulate(_td3(_nm("2:4")), "h100_sxm", batch=batch, bits=bits, scenario=scenario)
    assert res.extra["datatype"] == dtype
    gemms = [r for r in res.layers if r.phase in ("forward", "backward_data", "backward_weight")]
    assert any(r.hw_pattern == "2:4" for r in gemms) and any(r.hw_pattern == "dense" for r in gemms)
    expected = 0.0
    for r in gemms:
        want = _model_us(spec, r, dtype) * 1e-6 * r.times_per_step
        assert r.figures.latency_s == pytest.approx(want, rel=1e-12), r.name
        assert r.figures.cycles == pytest.approx(r.figures.latency_s * spec.tensor_clock_mhz * 1e6)
        expected += want
    for r in res.layers:
        if r.phase in ("optimizer", "polyak"):  # memory-bound element-wise passes
            nbytes = (r.figures.bits_dram_read + r.figures.bits_dram_write) / 8.0 / r.times_per_step
            p = dp.model_params(spec)
            expected += (p.kernel_dense_us * 1e-6 + nbytes / (p.eta_mem * spec.memory_bytes_per_s)) * r.times_per_step
    assert res.total.latency_s == pytest.approx(expected, rel=1e-12)
    assert (scenario == "train_step") == any(r.phase == "optimizer" for r in res.layers)


@pytest.mark.parametrize("make,runs_24", [(_nm("2:4"), True), (_nm("1:8"), True), (_nm("4:8"), False),
                                         (_unstructured(0.5), False)])
def test_only_masks_that_fit_2to4_run_sparse(make, runs_24):
    spec = gpu_for("a100_pcie")
    res = simulate(_td3(make), "a100_pcie", batch=64, bits=16, scenario="train_step")
    hidden = [r for r in res.layers if r.name.endswith("fc2") and r.phase == "forward"]
    for r in hidden:
        fits = runs_24
        assert (r.hw_pattern == "2:4") == fits, (r.name, r.mapping_note)
        if fits:
            assert r.mapping_note.startswith("GPU 2:4 (cuSPARSELt)")
            assert r.figures.bytes_weights == weight_bytes(r.n, r.k, "bfloat16", True) * r.times_per_step
        else:
            # Any other mask runs dense: the dense time, dense MACs issued, and the note says why.
            assert "GPU runs 2:4 only" in r.mapping_note and "run dense" in r.mapping_note
            assert r.figures.latency_s == pytest.approx(r.dense.latency_s) == pytest.approx(
                _model_us(spec, r, "bfloat16") * 1e-6 * r.times_per_step)
            assert r.figures.macs_issued == r.m * r.k * r.n * r.times_per_step
    # Weight gradients always run dense; dense layers stay dense.
    assert all(r.hw_pattern == "dense" for r in res.layers if r.phase == "backward_weight")
    assert all(r.hw_pattern == "dense" for r in res.layers if r.name.endswith("fc1") and r.phase == "forward")


def test_backward_data_checks_the_transposed_mask():
    # A 2:4 mask along rows is generally not 2:4 along columns: W^T then runs dense.
    res = simulate(_td3(_nm("2:4")), "h100_pcie", batch=256, bits=16, scenario="train_step")
    fwd = {r.name: r for r in res.layers if r.phase == "forward"}
    bwd = [r for r in res.layers if r.phase == "backward_data" and r.name.endswith("fc2")]
    assert bwd and all(fwd[r.name].hw_pattern == "2:4" for r in bwd)
    assert all(r.hw_pattern == "dense" and "W^T" in r.mapping_note for r in bwd)


@pytest.mark.parametrize("gpu", ["h100_sxm", "rtx4090", "b200"])
def test_energy_is_time_times_the_documented_board_power(gpu):
    spec = gpu_for(gpu)
    res = simulate(_td3(_nm("2:4")), gpu, batch=256, bits=16, scenario="train_step")
    limit = spec.power_limit_w
    for r in res.layers:
        f, t = r.figures, r.figures.latency_s
        # Recompute the documented model: P = limit x (floor + (1 - floor) x utilization).
        if r.phase in ("optimizer", "polyak"):
            util = (f.bits_dram_read + f.bits_dram_write) / 8.0 / (t * spec.memory_bytes_per_s)
        else:
            sparse = r.hw_pattern == "2:4"
            flops = 2.0 * r.m * r.k * r.n * (0.5 if sparse else 1.0) * r.times_per_step
            nbytes = (r.m * r.k * 2 + weight_bytes(r.n, r.k, "bfloat16", sparse) + r.m * r.n * 2) * r.times_per_step
            util = max(flops / (t * spec.peak_flops("bfloat16", sparse)), nbytes / (t * spec.memory_bytes_per_s))
        power = limit * (dp.IDLE_FRACTION + (1 - dp.IDLE_FRACTION) * min(util, 1.0))
        assert f.energy_pj == pytest.approx(power * t * 1e12, rel=1e-9), r.name
        assert f.energy_leakage_pj == pytest.approx(dp.IDLE_FRACTION * limit * t * 1e12, rel=1e-9)
        assert dp.IDLE_FRACTION * limit * t * 1e12 <= f.energy_pj * (1 + 1e-12) <= limit * t * 1e12 * (1 + 1e-12)
        # Only the MAC and leakage buckets carry GPU energy (the model does not split the rest).
        assert f.energy_sram_pj == f.energy_dram_pj == f.energy_reg_pj == f.energy_metadata_pj == 0.0
    assert "assumed floor" in res.extra["gpu"]["power_model"] and str(int(limit)) in res.extra["gpu"]["power_model"]


def test_gpu_points_carry_the_accelerator_columns(tmp_path):
    from sweeps.config import parse_config
    from sweeps.evaluate import evaluate_point
    from sweeps.grid import plan

    wl = _td3(_nm("2:4"))
    wl.meta["sparsity"] = "2:4"
    path = tmp_path / "w.nmw"
    from hwmodel.workload import save_workload

    save_workload(wl, path)
    cfg = parse_config({"workloads": [str(path)], "patterns": ["2:4"], "bits": [16, 8], "designs": ["stc_hbm"],
                        "gpus": ["h100_sxm", "rtx4090"]}, base=tmp_path)
    p = plan(cfg)
    assert {d.name for d in p.designs} == {"stc_hbm", "h100_sxm", "rtx4090"}
    rows = [evaluate_point(x) for x in p.points()]
    gpu_rows = [r for r in rows if r["design"] != "stc_hbm"]
    acc_rows = [r for r in rows if r["design"] == "stc_hbm"]
    assert gpu_rows and acc_rows
    assert {k for r in gpu_rows for k in r} == {k for r in acc_rows for k in r}
    for r in gpu_rows:
        assert r["datatype"] == {16: "bfloat16", 8: "int8"}[r["bits"]]
        assert r["energy_pj"] > 0 and r["latency_s"] > 0 and 0 < r["utilization"] < 1


def test_sweep_config_gpus_key():
    from sweeps.config import DEFAULT_GPUS, SweepConfig, parse_config

    assert SweepConfig().gpus == list(DEFAULT_GPUS) and {"h100_sxm", "a100_sxm"} <= set(DEFAULT_GPUS)
    assert parse_config({"designs": ["edge_ws"]}).gpus == []          # listed designs: just those
    assert parse_config({"gpus": "bundled"}).gpus == "bundled"
    assert parse_config({"gpus": "none"}).gpus == []
    assert parse_config({"gpus": ["b200"]}).gpus == ["b200"]


def test_a_sweep_of_gpus_alone(tmp_path):
    # designs: none (or []) sweeps the gpus alone; with no gpus either there is nothing to sweep.
    from sweeps.config import parse_config
    from sweeps.grid import resolve_designs

    for none in ("none", [], None):
        cfg = parse_config({"designs": none, "gpus": ["h100_sxm"]})
        assert cfg.designs == [] and [d.name for d in resolve_designs(cfg)] == ["h100_sxm"]
        with pytest.raises(NmlabError, match=r"^sweep config: designs: none, and no gpus either: nothing to sweep"):
            parse_config({"designs": none})
    (tmp_path / "c.yaml").write_text('designs: none\ngpus: [h100_sxm]\nbits: [8]\npatterns: [dense, "2:4"]\n')
    out = subprocess.run([*NMLAB, "sweep", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "res"), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import pandas as pd

    assert set(pd.read_parquet(tmp_path / "res" / "points.parquet").design) == {"h100_sxm"}


def test_gpu_names_and_bad_input():
    assert not set(bundled_gpus()) & set(bundled_designs())  # one name, one kind of design point
    with pytest.raises(NmlabError, match="is a GPU spec, not an accelerator design"):
        load_design("h100_sxm")
    with pytest.raises(NmlabError, match=r"runs 16 \(bfloat16\), 8 \(int8\) bits, not 4"):
        simulate(_td3(_nm("2:4")), "h100_sxm", bits=4)
    assert dp.gpu_design("edge_ws") is None and dp.gpu_design("h100_sxm").name == "h100_sxm"
    spec_file = str(dp.gpu_design("b200").source)
    assert dp.gpu_design(spec_file).spec == gpu_for("b200")  # a spec file works as well as its name


def test_check_takes_a_gpu_design():
    out = subprocess.run([*NMLAB, "check", "--design", "h100_sxm", "--bits", "16,8", "--latency-budget", "1s"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("design h100_sxm,") and "PASS latency <= 1s" in out.stdout
    bad = subprocess.run([*NMLAB, "check", "--design", "h100_sxm", "--bits", "4"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not 4" in bad.stderr
    tight = subprocess.run([*NMLAB, "check", "h100_sxm", "--latency-budget", "1ns"], capture_output=True, text=True,
                           timeout=300)
    assert tight.returncode == 1 and "FAIL latency" in tight.stdout


def test_simulate_json_of_a_gpu_is_strict_json(capsys):
    # A GPU point's accelerator-only extras are NaN; `simulate --json` printed them as the bare
    # token NaN, which strict JSON readers (jq, JavaScript) refuse.
    import json

    from hwmodel.cli import main

    assert main(["simulate", "--design", "h100_sxm", "--json"]) == 0

    def refuse(name):
        raise ValueError(f"non-JSON constant {name}")

    doc = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert doc["extra"]["technology_nm"] is None and doc["extra"]["datatype"] == "int8"
    assert doc["extra"]["gpu"]["power_model"].startswith("board power = 700 W power limit")


def test_simulate_text_states_a_gpus_energy_model_and_its_source():
    # The table's "mac" and "leakage" of a GPU are the board power above and at the assumed floor;
    # the text output said neither that nor where the power limit comes from.
    out = subprocess.run([*NMLAB, "simulate", "--design", "h100_sxm"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("energy model:")]
    assert "700 W power limit x (0.25 assumed floor" in line
    assert "NVIDIA H100 Tensor Core GPU datasheet" in line and "leakage = the floor" in line


def test_docs_name_only_real_model_parameters():
    # docs/gpu.md "GPUs as design points" named a `node_us` parameter the model does not have.
    import re
    from dataclasses import fields

    from pathlib import Path

    from hwmodel.gpu.model import GpuParams

    text = (Path(__file__).resolve().parents[1] / "docs" / "gpu.md").read_text()
    section = text.split("## GPUs as design points", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z_]+_(?:us|mem))`", section))
    assert named and named <= {f.name for f in fields(GpuParams)}, named - {f.name for f in fields(GpuParams)}


def test_a_design_file_over_the_yaml_bound_is_not_read_whole(tmp_path, monkeypatch):
    # Telling a GPU spec from a design read the whole file before any size bound applied.
    import tracemalloc

    from hwmodel.cli import main

    big = tmp_path / "big.yaml"
    big.write_text("format: nmlab-gpu\n#" + "x" * (32 << 20) + "\n")
    monkeypatch.setenv("NMLAB_MAX_YAML_BYTES", "100000")
    tracemalloc.start()
    try:
        assert main(["simulate", "--design", str(big)]) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_a_spec_of_an_unfitted_architecture_says_it_runs_the_generic_set(tmp_path):
    # params_for falls back to the "generic" set; the result said "bundled per architecture"
    # and `gpu predict` labelled it with the architecture's name.
    from hwmodel.gpu.params import set_name_for

    with open(dp.gpu_design("h100_sxm").source) as fh:
        text = fh.read()
    # A compute capability the kernel tables do not know, of an architecture without a set of its own (a
    # known compute capability with another architecture is refused: tests/test_gpu_own_spec.py).
    spec_file = tmp_path / "next_arch.yaml"
    spec_file.write_text(text.replace("architecture: hopper", "architecture: nextgen").replace(
        "name: h100_sxm", "name: next_arch").replace('compute_capability: "9.0"', 'compute_capability: "13.0"'))
    gpu = dp.gpu_design(str(spec_file))
    assert set_name_for(gpu.spec) == "generic" and set_name_for(gpu_for("h100_sxm")) == "hopper"
    res = simulate(_td3(_nm("2:4")), str(spec_file), bits=16)
    assert "the fitted 'generic' set" in res.extra["gpu"]["latency_model"]


def test_simulate_text_does_not_call_a_gpus_weights_resident():
    # The GPU model reads weights from DRAM on every call (L2 cold); the header said "52.4MB SRAM:
    # resident" and ignored --residency stream without a word.
    out = subprocess.run([*NMLAB, "simulate", "--design", "h100_sxm", "--residency", "stream"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[1]
    assert "52.4MB L2: fit, read from DRAM on every call" in header and "resident" not in header, header
    assert "--residency does not apply" in header


@pytest.mark.parametrize("scenario", ["inference", "train_step"])
def test_columns_of_many_runs_equal_each_run_alone_to_the_bit(scenario):
    # A sweep's GPU rows differed in the last bit with its chunking (1.0 against 0.9999999999999998
    # for a dense row against itself): numpy summed a transposed view's rows in an order that
    # depended on how many runs a chunk held.
    from hwmodel.io import data_path
    from hwmodel.workload import load_workload

    wl = load_workload(data_path("workloads", "hopper_2of4_s0.nmw"))
    gpu = gpu_for("h100_sxm")
    plan = dp.gpu_plan(wl, scenario)
    batch = np.array([1, 2, 3, 7, 16, 64, 256, 1024] * 2)
    bits = np.array([16] * 8 + [8] * 8)
    together, _ = dp.simulate_gpu_columns(plan, gpu, batch, bits)
    for i in range(len(batch)):
        alone, _ = dp.simulate_gpu_columns(plan, gpu, batch[i:i + 1], bits[i:i + 1])
        for name, col in together.items():
            assert np.array_equal(col[i:i + 1], alone[name]), (name, i, col[i], alone[name][0])


def test_board_power_by_hand_and_never_above_the_limit():
    """H100 SXM, 700 W limit, floor 0.25: 175 W static whatever the load, 0.75 x 700 x utilization
    dynamic; a utilization estimate above 1 (a roofline the model's time beats) is capped at the limit."""
    gpu = dp.gpu_design(dp.load_design_point("h100_sxm"))
    assert gpu.power_limit_w() == 700.0 and dp.IDLE_FRACTION == 0.25
    static, dynamic = dp._power_w(gpu, np.array([0.0, 0.5, 1.0, 3.0]))
    assert static.tolist() == [175.0] * 4
    assert dynamic.tolist() == [0.0, 262.5, 525.0, 525.0]


@pytest.fixture(scope="module")
def actor_fc1_fc2_2to4():
    """Actor fc1 (dense) and fc2 (2:4) of a 2:4 TD3 workload's inference on the H100 SXM, batch 8, 16 bits."""
    res = simulate(_td3(_nm("2:4")), "h100_sxm", batch=8, bits=16, scenario="inference")
    return tuple(next(r for r in res.layers if r.name == f"actor.fc{i}") for i in (1, 2))


def test_a_2to4_layer_issues_half_its_macs_and_a_dense_one_all(actor_fc1_fc2_2to4):
    """Actor fc2 at 2:4 (256 x 256, batch 8): 524288 dense MACs, 262144 issued by the sparse tensor
    cores and as many effectual (its mask keeps 2 of every 4); fc1 runs dense and issues all 8 x 11 x 256."""
    fc1, fc2 = actor_fc1_fc2_2to4
    assert fc2.hw_pattern == "2:4" and fc1.hw_pattern == "dense"
    assert (fc2.figures.macs_dense, fc2.figures.macs_issued, fc2.figures.macs_effectual) == (524288, 262144, 262144)
    assert fc1.figures.macs_dense == fc1.figures.macs_issued == 8 * 11 * 256


def test_2to4_metadata_is_one_index_per_kept_weight(actor_fc1_fc2_2to4):
    """cuSPARSELt keeps 2 of every 4 weights, each with a 2-bit index of its slot in the group:
    metadata bits = (n k / 2) x 2 for actor fc2 (256 x 256); a dense GEMM carries none."""
    fc1, fc2 = actor_fc1_fc2_2to4
    index_bits = (4 - 1).bit_length()  # bits naming one of 4 slots
    assert fc2.figures.bits_metadata == (256 * 256 // 2) * index_bits
    assert fc1.figures.bits_metadata == 0


def test_a_2to4_gemm_issues_half_its_padded_fan_in():
    """A 2:4 mask over a fan-in that is not a multiple of 4 keeps up to 2 weights in the last,
    zero-padded group (11 inputs: 3 groups, up to 6 kept per row, not 5.5): the sparse tensor
    cores issue half of ceil(K / 4) x 4 per output, never fewer MACs than the effectual ones."""
    rng = np.random.default_rng(0)
    layers = []
    for net, dims in (("actor", (11, 64, 3)), ("critic1", (14, 64, 1)), ("critic2", (14, 64, 1))):
        for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(Layer(f"{net}.fc{i + 1}", net, k, n, "2:4",
                                nm_mask(rng.standard_normal((n, k)).astype(np.float32), "2:4"), 16))
    res = simulate(Workload(layers=layers, meta={"env": "hopper"}), "h100_sxm", batch=8, bits=16,
                   scenario="inference")
    fc1 = next(r for r in res.layers if r.name == "actor.fc1")
    assert fc1.hw_pattern == "2:4" and (fc1.m, fc1.k, fc1.n) == (8, 11, 64)
    assert fc1.figures.macs_issued == 8 * 64 * 12 // 2
    assert fc1.figures.macs_effectual == 8 * 64 * 6  # nm_mask keeps 2 of the last group's 3 real weights


@pytest.mark.parametrize("bits, value_bytes", [(16, 2), (8, 1)])
def test_a_2to4_weight_stores_the_slots_its_macs_are_issued_on(bits, value_bytes):
    """The compressed weight holds what the sparse tensor cores issue on: ceil(K / 4) x 2 values
    per row, each with 2 bits of metadata (11 inputs: 6 per row, not 5.5), in its bytes, its
    metadata, the DRAM traffic and the stored weights, as in macs_issued."""
    rng = np.random.default_rng(0)
    layers = [Layer("actor.fc1", "actor", 11, 64, "2:4", nm_mask(rng.standard_normal((64, 11)).astype(np.float32), "2:4"),
                    bits),
              Layer("actor.fc2", "actor", 64, 3, "dense", None, bits)]
    res = simulate(Workload(layers=layers, meta={"env": "hopper"}), "h100_sxm", batch=8, bits=bits, scenario="inference")
    fc1 = next(r for r in res.layers if r.name == "actor.fc1")
    assert fc1.hw_pattern == "2:4" and (fc1.m, fc1.k, fc1.n) == (8, 11, 64)
    slots = 64 * 12 // 2
    assert fc1.figures.macs_issued == 8 * slots
    assert fc1.figures.bits_metadata == slots * 2
    assert fc1.figures.bytes_weights == slots * (value_bytes + 2 / 8)
    assert fc1.figures.bits_dram_read == (8 * 11 * value_bytes + slots * (value_bytes + 2 / 8)) * 8
    assert res.extra["bytes_weights_stored"] == slots * (value_bytes + 2 / 8) + 64 * 3 * value_bytes


@pytest.mark.parametrize("gpu", ["h100_sxm", "a100_sxm"])
def test_bundled_agents_never_issue_fewer_macs_than_effectual(gpu):
    from hwmodel.workload import bundled_workloads

    for wl in sorted(bundled_workloads()):
        for scenario, batch in (("inference", 1), ("inference", 64), ("train_step", 256)):
            for bits in (16, 8):
                res = simulate(str(wl), gpu, batch=batch, bits=bits, scenario=scenario)
                for r in [*res.layers, res.total]:
                    f = getattr(r, "figures", r)
                    assert f.macs_effectual <= f.macs_issued, (wl.name, scenario, bits, getattr(r, "name", "total"))


def test_a_gpu_sweep_of_the_defaults_never_issues_fewer_macs_than_effectual(tmp_path):
    """Every GPU point of the default grid (patterns, bits, scenarios, bundled agents): the
    sparse tensor cores issue at least the MACs the masks keep."""
    import pandas as pd

    from sweeps import api
    from sweeps.config import DEFAULT_GPUS, parse_config

    api.run(parse_config({"designs": "none", "gpus": list(DEFAULT_GPUS)}), tmp_path / "out", workers=1, progress=False)
    df = pd.read_parquet(tmp_path / "out" / "points.parquet")
    assert len(df) and {"h100_sxm", "a100_sxm"} <= set(df.design)
    bad = df[df.macs_effectual > df.macs_issued]
    assert bad.empty, bad[["design", "workload", "pattern", "bits", "scenario", "macs_effectual", "macs_issued"]]
