"""Sweep engine: grid expansion, stable ids, part files, resume after SIGKILL, pool and Ray agree.

The engine is tested with a cheap deterministic stand-in for the hardware model
(:func:`fake_evaluate`) so these tests exercise the machinery, not the model; the end-to-end
tests with the real model are in test_sweep_cli.py.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from hwmodel.errors import NmlabError
from hwmodel.workload import save_workload, synthetic_td3_workload
from sweeps import api, engine, store
from sweeps.config import Scenario, load_config, parse_config
from sweeps.grid import canonical_of, plan, point_id

REPO = Path(__file__).resolve().parents[1]


def fake_evaluate(point: dict) -> dict:
    """Deterministic figures from the point's configuration (a stand-in for hwmodel.simulate)."""
    from sweeps.evaluate import config_columns

    density = 1.0 if point["pattern"] == "dense" else int(point["pattern"].split(":")[0]) / int(point["pattern"].split(":")[1])
    seed = int(point["point_id"][:6], 16) / 0xFFFFFF
    delay = float(os.environ.get("FAKE_EVAL_DELAY_S", "0"))
    if delay:
        time.sleep(delay)
    energy_pj = 1e3 * point["batch"] * density * point["bits"] * (1 + seed)
    return {
        **config_columns(point),
        "latency_s": 1e-6 * point["batch"] * density * (1 + seed),
        "energy_pj": energy_pj,
        "energy_mac_pj": 0.5 * energy_pj, "energy_sram_pj": 0.3 * energy_pj, "energy_dram_pj": 0.2 * energy_pj,
        "model_bytes": 1e4 * density * point["bits"] / 8,
        "fits_in_sram": bool(seed > 0.5),
        "area_mm2": None,
        "speedup_vs_dense": 1 / density,
        "energy_ratio_vs_dense": density,
    }


def make_workloads(tmp: Path, envs=("Hopper-v5", "Ant-v5"), trained=("dense", "2:4")) -> list[str]:
    paths = []
    for e, (obs, act) in zip(envs, [(11, 3), (27, 8), (17, 6)]):
        for pat in trained:
            wl = synthetic_td3_workload(obs, act, pattern=pat, hidden=(32, 32), seed=0, with_weights=True)
            wl.meta.update(env=e, method="rnm-td3" if pat != "dense" else "td3", sparsity=pat, seed=0)
            p = tmp / f"{e.split('-')[0].lower()}_{pat.replace(':', 'of')}_s0.nmw"
            save_workload(wl, p)
            paths.append(str(p))
    return paths


def write_config(tmp: Path, **overrides) -> Path:
    data = {
        "workloads": overrides.pop("workloads", None) or make_workloads(tmp),
        "patterns": ["dense", "2:4", "1:8"],
        "bits": [8, 4],
        "designs": ["edge_ws", "flex_nm"],
        "scenarios": [{"scenario": "inference", "batch": 1}, {"scenario": "train_step", "batch": [64, 256]}],
        "quality": None,
    }
    data.update(overrides)
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grid_size_ids_and_mask_sources(tmp_path):
    cfg = load_config(write_config(tmp_path))
    p = plan(cfg)
    points = list(p.points())
    # 2 envs x 3 patterns x 2 bits x 2 designs x 3 scenario/batch pairs
    assert len(points) == len(p) == 2 * 3 * 2 * 2 * 3
    assert len({pt["point_id"] for pt in points}) == len(points)
    assert p.point_ids() == [pt["point_id"] for pt in points]  # the fast path hashes the same text
    for pt in points:
        assert pt["point_id"] == point_id(canonical_of(pt))
        # 1:8 has no trained workload here: pruned one-shot from dense; the others are trained.
        assert pt["mask_source"] == ("one-shot" if pt["pattern"] == "1:8" else "trained")
        assert not any(isinstance(v, str) and v.startswith("/") for k, v in canonical_of(pt).items())
    # Ids hash content, not the path: a copy of the same files elsewhere gives the same ids.
    other = tmp_path / "copy"
    other.mkdir()
    copies = [shutil.copy(w, other / Path(w).name) for w in cfg.workloads]
    cfg2 = load_config(write_config(other, workloads=[str(c) for c in copies]))
    assert [q["point_id"] for q in plan(cfg2).points()] == [q["point_id"] for q in points]


def test_ids_change_with_configuration(tmp_path):
    cfg = load_config(write_config(tmp_path))
    pts = list(plan(cfg).points())
    a = canonical_of(pts[0])
    for key, value in (("bits", 5), ("batch", 2), ("design_sha", "0" * 16), ("pattern", "1:4")):
        assert point_id({**a, key: value}) != point_id(a)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"bits": [8, "eight"]}, "sweep config: bits[1]: must be an integer from 1 to 32, got 'eight'"),
        ({"patterns": ["2:4", "5:4"]}, "sweep config: patterns[1]: '5:4' has N=5"),
        ({"patterns": [124]}, 'sweep config: patterns[0]: expected a string like \'2:4\' or \'dense\', got 124 (YAML reads an unquoted 2:4 as the base-60 number 124: quote it, "2:4")'),
        ({"scenarios": [{"scenario": "training"}]}, "sweep config: scenarios[0].scenario: must be one of inference, train_step"),
        ({"scenarios": [{"scenario": "inference", "batch": 0}]}, "sweep config: scenarios[0].batch: must be a positive integer"),
        ({"scenarios": [{"scenario": "inference", "batch": []}]}, "sweep config: scenarios[0].batch: must be a positive integer or a non-empty list"),
        ({"colour": 1}, "sweep config: colour: unknown key"),
        ({"workloads": ["nope.nmw"]}, "sweep config: workloads[0]: no such file: nope.nmw"),
        # quality is one path: its errors name "quality" (they said "quality[0]").
        ({"quality": "nope.csv"}, "sweep config: quality: no such file: nope.csv"),
        # A folder says so (it said "no such file", sending the user after a typo).
        ({"workloads": ["."]}, "sweep config: workloads[0]: .: is a directory"),
        ({"quality": "."}, "sweep config: quality: .: is a directory"),
        ({"quality": ["a.csv", "b.csv"]}, "sweep config: quality: must be bundled, none or a CSV file path, got ['a.csv', 'b.csv']"),
        ({"version": 7}, "sweep config: version: unknown version 7"),
        ({"chunk_size": 0}, "sweep config: chunk_size: must be a positive integer"),
        ({"bits": [8, 8]}, "sweep config: bits[1]: duplicate bitwidth 8"),
        # An absurd group: pruning pads rows to a multiple of M (this one would allocate terabytes).
        ({"patterns": ["dense", "1:1000000000"]}, "sweep config: patterns[1]: '1:1000000000' has M=1,000,000,000; M is at most 1,024"),
        ([1, 2], "sweep config: must be a YAML mapping"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path, data, message):
    with pytest.raises(NmlabError) as err:
        parse_config(data, base=tmp_path)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    # Every design runs 8 bits here: the grid is empty because no env has a trained unstructured agent.
    ({"patterns": ["unstructured"]}, "sweep config: patterns: no point to sweep: no env has a workload for unstructured"),
    ({"bits": [2]}, "sweep config: bits: no design supports any of the bitwidths 2"),
    ({"gpus": ["h100"]}, "sweep config: gpus[0]: h100: no such GPU spec file or bundled GPU (bundled GPUs: a100_pcie, "),
    ({"gpus": [str(REPO / "hwmodel/data/gpus")]},
     f"sweep config: gpus[0]: {REPO / 'hwmodel/data/gpus'}: is a directory, not a GPU spec file (bundled GPUs: a100_pcie, "),
    ({"gpus": [str(REPO / "hwmodel/data/designs/edge_ws.yaml")]}, "sweep config: gpus[0]: "),
    ({"gpus": ["/dev/zero"]}, "sweep config: gpus[0]: /dev/zero: not a regular file (bundled GPUs: a100_pcie, "),
    ({"designs": ["edge_ws", "nope"]}, "sweep config: designs[1]: design: no such file or bundled design: nope"),
    # A GPU listed twice named 'designs' (the user's designs list has no duplicate).
    ({"designs": ["edge_ws"], "gpus": ["h100_sxm", "a100_sxm", "h100_sxm"]},
     "sweep config: gpus[2]: a second design point named 'h100_sxm' (gpus[0]); names must be unique"),
    ({"designs": ["edge_ws", "flex_nm", "edge_ws"]},
     "sweep config: designs[2]: a second design point named 'edge_ws' (designs[0]); names must be unique"),
])
def test_empty_or_unknown_grid_entries_name_the_key_at_fault(tmp_path, overrides, message):
    """Planning errors name the config key that causes them (not bits for an empty pattern list,
    not a design list for a GPU name)."""
    with pytest.raises(NmlabError) as err:
        plan(load_config(write_config(tmp_path, **overrides)))
    assert str(err.value).startswith(message)
    if "edge_ws.yaml" in str(overrides):
        assert "not a GPU spec file (an accelerator design goes under designs)" in str(err.value)


def test_unstructured_levels_keep_their_digits_and_run(tmp_path):
    """'unstructured:0.9999999' was named 'unstructured:1' (``:g`` rounds to 6 digits), a sparsity the
    model refuses: the sweep failed at its first point, after writing sweep.json and parts/."""
    cfg = parse_config({"patterns": ["unstructured:0.90", "unstructured:0.9999999", "unstructured:0.1234567"]})
    assert cfg.patterns == ["unstructured:0.9", "unstructured:0.9999999", "unstructured:0.1234567"]
    stats = api.run(load_config(write_config(tmp_path, patterns=["unstructured:0.9999999"], bits=[8],
                                             designs=["edge_ws"])), tmp_path / "out", workers=1, progress=False)
    table = store.read_table(tmp_path / "out").to_pandas()
    assert stats["rows"] == len(table) > 0 and set(table.pattern) == {"unstructured:0.9999999"}


def test_long_batch_and_pattern_lists_validate_in_linear_time():
    """Duplicates were looked up in a list: with ``parse_config`` of 3ca12a9, 20,000 batch sizes
    (a YAML well under the 1 MiB limit) took 32.0 s to validate and 20,000 patterns 1.76 s (one
    run each, 2-vCPU AMD EPYC at load 2.0-3.4, 2026-12-06); now both take well under a second
    (2 s bound against a loaded machine)."""
    import time

    start = time.perf_counter()
    cfg = parse_config({"scenarios": [{"scenario": "inference", "batch": list(range(1, 20_001))}],
                        "patterns": [f"{n}:{m}" for m in range(2, 300) for n in range(1, m + 1)][:20_000]})
    assert time.perf_counter() - start < 2.0
    assert len(cfg.scenarios) == 20_000 and len(cfg.patterns) == 20_000 and cfg.patterns[:3] == ["1:2", "2:2", "1:3"]
    with pytest.raises(NmlabError, match=r"scenarios\[0\]\.batch: duplicate scenario inference at batch 7"):
        parse_config({"scenarios": [{"scenario": "inference", "batch": [*range(1, 1000), 7]}]})


def test_config_defaults_and_batch_lists():
    cfg = parse_config({"scenarios": ["inference", {"scenario": "train_step", "batch": [32, 256]}]})
    assert cfg.scenarios == [Scenario("inference", 1), Scenario("train_step", 32), Scenario("train_step", 256)]
    assert cfg.workloads == "bundled" and cfg.designs == "bundled"


def _run(cfg_path, out, **kw):
    return api.run(cfg_path, out, evaluate=fake_evaluate, progress=False, **kw)


def test_pool_matches_in_process_and_rows_are_complete(tmp_path):
    cfg = write_config(tmp_path)
    s1 = _run(cfg, tmp_path / "a", workers=1)
    s2 = _run(cfg, tmp_path / "b", workers=2)
    a = store.read_table(tmp_path / "a").to_pandas()
    b = store.read_table(tmp_path / "b").to_pandas()
    assert s1["rows"] == s2["rows"] == len(a) == 72
    assert a.equals(b)
    assert a["point_id"].is_unique
    for col in ("env", "pattern", "bits", "design", "scenario", "batch", "mask_source", "latency_s", "energy_pj",
                "return_mean", "return_missing", "speedup_vs_dense_ref", "energy_ratio_vs_dense_ref"):
        assert col in a.columns
    # Dense reference: dense rows at the top bitwidth have ratio exactly 1.
    top = a[(a.pattern == "dense") & (a.bits == 8)]
    assert (top.speedup_vs_dense_ref == 1).all() and (top.energy_ratio_vs_dense_ref == 1).all()
    # No quality table configured: every return is missing, and said so.
    assert a.return_missing.all() and a.return_mean.isna().all()


@pytest.mark.parametrize("patterns", [["dense", "2:4", "1:8"], ["2:4", "dense", "1:8"]])
def test_streamed_table_equals_the_table_consolidated_from_the_parts(tmp_path, patterns):
    """A fresh sweep writes points.parquet while chunks finish (store.TableStream); rebuilding
    it from the same parts afterwards (the resume path) gives exactly the same rows, whether
    the dense rows come first in the grid or not."""
    cfg = write_config(tmp_path, patterns=patterns, chunk_size=7)
    out = tmp_path / "out"
    _run(cfg, out, workers=2)
    streamed = store.read_table(out).to_pandas()
    assert len(store.list_parts(out)) == math.ceil(len(streamed) / 7)
    (out / store.TABLE).unlink()
    assert _run(cfg, out, workers=1)["evaluated"] == 0  # parts present: consolidated at the end
    assert store.read_table(out).to_pandas().equals(streamed)


def test_table_stream_gives_way_when_a_part_is_not_the_planned_rows(tmp_path):
    """A part whose ids are not the planned ones abandons the stream: no temporary file is
    left, an existing table is untouched, and finish() says to consolidate instead."""
    import numpy as np
    import pyarrow as pa

    from sweeps.derived import Derivation

    out = tmp_path / "out"
    store.parts_dir(out).mkdir(parents=True)
    (out / store.TABLE).write_bytes(b"earlier table")
    part = store.write_part(out, pa.table({"point_id": ["a" * 16, "b" * 16], "pattern": ["dense", "2:4"]}))
    stream = store.TableStream(out, [(0, 2)], np.array([b"c" * 16, b"d" * 16], dtype="S16"), 1, Derivation(None))
    stream.add(0, part)
    assert stream.finish() is None
    assert (out / store.TABLE).read_bytes() == b"earlier table"
    assert not list(out.glob(".*.tmp"))


def test_rerun_is_idempotent_and_resumes_only_missing(tmp_path):
    cfg = write_config(tmp_path, chunk_size=5)
    out = tmp_path / "out"
    first = _run(cfg, out, workers=1)
    before = store.read_table(out).to_pandas()
    # Lose some parts (as if the run had been killed before writing them): only they are redone.
    parts = store.list_parts(out)
    lost = sum(pq.read_metadata(part).num_rows for part in parts[:3])
    for part in parts[:3]:
        part.unlink()
    again = _run(cfg, out, workers=2)
    assert lost >= 3 and again["evaluated"] == lost and again["already_done"] == first["points"] - lost
    after = store.read_table(out).to_pandas()
    assert after.equals(before)
    # A third run evaluates nothing.
    assert _run(cfg, out, workers=1)["evaluated"] == 0


def test_a_model_change_reevaluates_every_point_instead_of_reusing_old_rows(tmp_path, monkeypatch):
    from sweeps import grid

    cfg = write_config(tmp_path, chunk_size=5)
    out = tmp_path / "out"
    first = _run(cfg, out, workers=1)
    assert engine.read_manifest(out)["model_sha"] == grid.model_sha()
    ids_before = set(store.read_table(out).column("point_id").to_pylist())
    # The same command after nmlab's model changed (its code or bundled constants): new ids, so
    # nothing is skipped, and the table holds the new rows only (the old parts stay, unused).
    monkeypatch.setattr(grid, "model_sha", lambda: "f" * 16)
    again = _run(cfg, out, workers=1)
    assert again["evaluated"] == first["points"] and again["already_done"] == 0
    table = store.read_table(out)
    assert table.num_rows == first["points"]
    assert ids_before.isdisjoint(table.column("point_id").to_pylist())
    assert engine.read_manifest(out)["model_sha"] == "f" * 16


def test_model_sha_covers_the_model_code_and_constants():
    from sweeps import grid

    sha = grid.model_sha()
    assert len(sha) == 16 and int(sha, 16) >= 0
    grid.model_sha.cache_clear()
    assert grid.model_sha() == sha  # content, not time or process: stable across calls


def test_duplicate_rows_in_parts_are_not_doubled(tmp_path):
    cfg = write_config(tmp_path, chunk_size=4)
    out = tmp_path / "out"
    _run(cfg, out, workers=1)
    before = store.read_table(out).to_pandas()
    # Simulate an overlap: a part whose rows are already in other parts (e.g. two runs racing).
    table = pq.read_table(store.list_parts(out)[0])
    pq.write_table(table, store.parts_dir(out) / "part-duplicate.parquet")
    _run(cfg, out, workers=1)
    assert store.read_table(out).to_pandas().equals(before)


def test_smaller_grid_in_same_dir_keeps_only_its_rows(tmp_path):
    out = tmp_path / "out"
    full = write_config(tmp_path)
    _run(full, out, workers=1)
    same_files = yaml.safe_load(full.read_text())["workloads"]
    small = write_config(tmp_path, workloads=same_files, patterns=["2:4"], bits=[8])
    stats = _run(small, out, workers=1)
    t = store.read_table(out).to_pandas()
    assert stats["evaluated"] == 0 and len(t) == 2 * 2 * 3
    assert set(t.pattern) == {"2:4"} and set(t.bits) == {8}


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from sweeps import api
    from tests.test_sweep_engine import fake_evaluate
    api.run({cfg!r}, {out!r}, workers={workers}, evaluate=fake_evaluate, progress=False)
    """
)


def _start(cfg, out, workers):
    code = _KILL_SCRIPT.format(repo=str(REPO), cfg=str(cfg), out=str(out), workers=workers)
    env = {**os.environ, "FAKE_EVAL_DELAY_S": "0.01"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_run_then_resume_gives_exactly_the_uninterrupted_rows(tmp_path, workers):
    cfg = write_config(tmp_path, chunk_size=2)
    ref = tmp_path / "ref"
    _run(cfg, ref, workers=1)
    expected = store.read_table(ref).to_pandas()

    out = tmp_path / "killed"
    proc = _start(cfg, out, workers)
    deadline = time.monotonic() + 60
    while len(store.list_parts(out)) < 5 if out.exists() else True:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: pool workers die too
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_parts = len(store.list_parts(out))
    assert 5 <= n_parts < math.ceil(len(expected) / 2), "the run must have been killed mid-way"
    assert not (out / store.TABLE).exists()

    stats = _run(cfg, out, workers=workers)
    assert stats["already_done"] >= 10 and stats["evaluated"] == len(expected) - stats["already_done"]
    got = store.read_table(out).to_pandas()
    assert got.equals(expected)
    assert not list(store.parts_dir(out).glob(".*.tmp"))


def shipped_evaluate(point: dict) -> dict:
    """Under Ray: the inputs are local copies shipped through the object store, same bytes and file name."""
    from sweeps.grid import file_sha

    assert "nmlab-ray-inputs-" in point["_workload_path"] and "nmlab-ray-inputs-" in point["_design_path"]
    assert file_sha(point["_workload_path"]) == point["workload_sha"]
    assert file_sha(point["_design_path"]) == point["design_sha"]
    assert Path(point["_design_path"]).stem == point["design"]
    return fake_evaluate(point)


def test_ray_gives_the_same_rows_and_leaves_no_input_copies(tmp_path, monkeypatch):
    """Each Ray worker copied the shipped inputs into a temp folder of its own that nobody removed (Ray ends
    its workers without their exit handlers): one more folder in the temp dir per worker and sweep."""
    import tempfile

    import ray
    cfg = write_config(tmp_path, patterns=["dense", "2:4"], bits=[8])
    _run(cfg, tmp_path / "pool", workers=2)
    # A short temp dir of its own (Ray puts its session's sockets there too: at most 107 bytes a path).
    temp = Path(tempfile.mkdtemp(prefix="nmlab-t-"))
    try:
        monkeypatch.setenv("TMPDIR", str(temp))  # the workers' (the local instance starts after this)
        monkeypatch.setattr(tempfile, "tempdir", str(temp))  # this process's, read once
        api.run(cfg, tmp_path / "ray", workers=1, use_ray=True, evaluate=shipped_evaluate, progress=False)
        assert not ray.is_initialized(), "a Ray instance started by the sweep is shut down after it"
        assert list(temp.glob("nmlab-ray-inputs-*")) == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    a = store.read_table(tmp_path / "pool").to_pandas()
    b = store.read_table(tmp_path / "ray").to_pandas()
    assert len(a) == 2 * 2 * 2 * 3 and a.equals(b)


def test_manifest_written(tmp_path):
    out = tmp_path / "out"
    _run(write_config(tmp_path), out, workers=1)
    m = engine.read_manifest(out)
    assert m["complete"] and m["points"] == 72 and m["config"]["bits"] == [8, 4]


def test_a_sweep_stopped_before_its_last_point_leaves_a_manifest_saying_not_complete(tmp_path, monkeypatch):
    """sweep.json is written before the points: one left by a sweep that never finished must say
    complete: false (the report then says the sweep is not complete), and true only after the run."""
    seen = {}

    def stopped(plan, out, *a, **k):
        seen["manifest"] = engine.read_manifest(out)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_sweep", stopped)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _run(write_config(tmp_path), out, workers=1)
    assert seen["manifest"]["complete"] is False
    assert engine.read_manifest(out)["complete"] is False


def test_dense_reference_lookup_matches_row_by_row():
    """The vectorised dense-reference lookup gives each row exactly its key's reference (or none)."""
    import numpy as np
    import pyarrow as pa

    from sweeps.derived import apply_dense_reference

    rng = np.random.default_rng(0)
    n = 500
    table = pa.table({"env": rng.choice(["Hopper", "Walker"], n).tolist(),
                      "design": rng.choice(["a", "b", "c"], n).tolist(),
                      "scenario": rng.choice(["inference", "train_step"], n).tolist(),
                      "batch": rng.choice([1, 7, 256], n).tolist(),
                      "latency_s": rng.uniform(1, 2, n), "energy_pj": rng.uniform(1, 2, n)})
    keys = list(zip(*(table.column(c).to_pylist() for c in ("env", "design", "scenario", "batch"))))
    ref = {k: (8 + i, 3.0 + i, 5.0 + i) for i, k in enumerate(sorted(set(keys))[::2])}
    ref[("Ant", "a", "inference", 1)] = (4, 1.0, 1.0)  # a key no row has
    got = apply_dense_reference(table, ref)
    for i, k in enumerate(keys):
        bits = got.column("dense_ref_bits")[i].as_py()
        speed = got.column("speedup_vs_dense_ref")[i].as_py()
        if k in ref:
            assert bits == ref[k][0] and speed == pytest.approx(ref[k][1] / table.column("latency_s")[i].as_py())
        else:
            assert bits is None and np.isnan(speed)


def test_sources_are_the_lowest_seed_trained_agent_else_the_dense_agent_pruned_one_shot():
    """docs/sweeps.md, patterns: per env and pattern the trained workload of that pattern with the
    lowest seed (one per method); without one, the env's dense workload with weights (lowest
    seed), else any workload with weights, pruned one-shot. Names are chosen so that file-name
    order disagrees with seed order, and a sparse agent sorts before the dense one."""
    from sweeps.grid import WorkloadInfo, choose_sources

    def info(name, pattern, method, seed, weights=True, env="Hopper-v5"):
        return WorkloadInfo(path=f"/w/{name}.nmw", name=name, sha=name, env=env, method=method, pattern=pattern,
                            seed=seed, has_weights=weights)

    ws = [info("a_24_s2", "2:4", "rnm-td3", 2), info("b_24_s0", "2:4", "rnm-td3", 0), info("c_24_s1", "2:4", "rnm-td3", 1),
          info("d_24_gmp_s1", "2:4", "gmp", 1), info("a_dense_s1", "dense", "td3", 1), info("z_dense_s0", "dense", "td3", 0),
          info("a_walker_24", "2:4", "rnm-td3", 3, weights=False, env="Walker2d-v5")]
    by = lambda chosen: sorted((w.name, src) for w, src in chosen)  # noqa: E731
    assert by(choose_sources(ws, "2:4")) == [("a_walker_24", "trained"), ("b_24_s0", "trained"), ("d_24_gmp_s1", "trained")]
    # No 1:4 agent: Hopper prunes its lowest-seed dense agent (not b_24_s0, which sorts first).
    hopper = [w for w in ws if w.env == "Hopper-v5"]
    assert by(choose_sources(hopper, "1:4")) == [("z_dense_s0", "one-shot")]
    # Without a dense agent, the lowest-seed workload with weights.
    sparse_only = [w for w in hopper if w.pattern != "dense"]
    assert by(choose_sources(sparse_only, "1:4")) == [("b_24_s0", "one-shot")]


def test_dense_reference_is_the_first_dense_row_at_the_highest_bits_of_its_key():
    """dense_reference equals a brute-force scan: per (env, design, scenario, batch), among the
    dense rows only, the highest bitwidth; of rows tied at it, the first in table order."""
    import numpy as np
    import pyarrow as pa

    from sweeps.derived import dense_reference

    rng = np.random.default_rng(1)
    n = 400
    table = pa.table({"env": rng.choice(["Hopper", "Walker"], n).tolist(),
                      "design": rng.choice(["a", "b"], n).tolist(),
                      "scenario": rng.choice(["inference", "train_step"], n).tolist(),
                      "batch": rng.choice([1, 256], n).tolist(),
                      "pattern": rng.choice(["dense", "2:4", "unstructured"], n).tolist(),
                      "bits": rng.choice([4, 8, 16], n).tolist(),
                      "latency_s": rng.uniform(1, 2, n), "energy_pj": rng.uniform(1, 2, n)})
    rows = table.to_pylist()
    want = {}
    for key in {(r["env"], r["design"], r["scenario"], r["batch"]) for r in rows}:
        dense = [r for r in rows if (r["env"], r["design"], r["scenario"], r["batch"]) == key and r["pattern"] == "dense"]
        if dense:
            top = max(r["bits"] for r in dense)
            first = next(r for r in dense if r["bits"] == top)
            want[key] = (first["bits"], first["latency_s"], first["energy_pj"])
    # The draw has keys with ties at the top bitwidth and keys whose only rows are sparse.
    assert len(want) > 4
    assert dense_reference(table) == want


def test_dense_reference_cache_starting_over_gives_the_same_values(monkeypatch, tmp_path):
    """When the per-process dense-reference cache is full it starts over (checked once per
    chunk): every point still gets its own dense figures, equal to a run whose cache never
    filled."""
    import numpy as np
    import pyarrow.parquet as pq

    import sweeps.evaluate as ev
    from sweeps import api
    from sweeps.config import Scenario, SweepConfig

    class Counted(dict):
        clears = 0

        def clear(self):
            Counted.clears += 1
            super().clear()

    cfg = SweepConfig(patterns=["dense", "2:4"], bits=[8, 16], designs=["edge_ws", "flex_nm"], gpus=[],
                      scenarios=[Scenario("inference", b) for b in (1, 3, 7)], quality=None, chunk_size=5)
    cols = ["point_id", "cycles", "energy_pj", "speedup_vs_dense", "energy_ratio_vs_dense"]

    def sweep(out):
        api.run(cfg, tmp_path / out, progress=False)  # a small grid runs in this process
        return pq.read_table(tmp_path / out / "points.parquet", columns=cols).sort_by("point_id").to_pydict()

    monkeypatch.setattr(ev, "_dense_totals", Counted())
    want = sweep("kept")
    kept_clears = Counted.clears
    monkeypatch.setattr(ev, "DENSE_TOTALS_MAX", 1)
    got = sweep("restarted")
    assert kept_clears == 0 and Counted.clears > 2   # the cache did start over, chunk after chunk
    assert len(set(np.round(want["speedup_vs_dense"], 9))) > 2
    assert got == want


def test_done_ids_reads_a_part_whose_point_id_column_is_dictionary_encoded(tmp_path):
    """A part written by another tool may store point_id dictionary-encoded (or all null): its
    ids are read like a plain string column's, not taken for string offsets."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    store.parts_dir(out).mkdir(parents=True)
    ids = ["0123456789abcdef", "fedcba9876543210"]
    pq.write_table(pa.table({"point_id": pa.array(ids).dictionary_encode()}), store.parts_dir(out) / "part-a.parquet")
    assert store.done_ids(out).tolist() == [i.encode() for i in ids]


def test_id_keys_refuses_ids_with_whitespace():
    """bytes.fromhex skips whitespace, so ids with spaces (from a foreign part) must give no
    keys rather than fewer keys than ids, shifted onto the wrong rows."""
    import numpy as np

    good = "0123456789abcdef"
    assert store.id_keys(np.array([good.encode()], dtype="S16")).tolist() == [int(good, 16)]
    for ids in ([b" " * 16, good.encode()], [b"0123456789abcd  "] * 8):
        assert store.id_keys(np.array(ids, dtype="S16")) is None


def test_a_listed_workload_that_another_stands_for_is_named_not_silently_dropped(tmp_path, capsys):
    """Two workloads of one agent (same env, pattern and method, e.g. a user's own 2:4 run listed
    beside the bundled one): only one is swept, and the sweep says which one it left out and why."""
    paths = make_workloads(tmp_path, envs=("Hopper-v5",))
    mine = synthetic_td3_workload(11, 3, pattern="2:4", hidden=(32, 32), seed=5, with_weights=True)
    mine.meta.update(env="Hopper-v5", method="rnm-td3", sparsity="2:4", seed=0)
    save_workload(mine, tmp_path / "my24.nmw")
    out = tmp_path / "out"
    _run(write_config(tmp_path, workloads=paths + [str(tmp_path / "my24.nmw")], patterns=["dense", "2:4"]), out, workers=1)
    rows = store.read_table(out).to_pandas()
    assert set(rows["workload"]) == {"hopper_dense_s0", "hopper_2of4_s0"}
    err = capsys.readouterr().err
    assert "my24" in err and "hopper_2of4_s0" in err
    assert engine.read_manifest(out)["workloads_not_swept"] == [
        "my24: hopper_2of4_s0 stands for Hopper-v5 2:4 rnm-td3 (one workload per env, pattern and method:"
        " lowest seed, then file name)"]


def test_rows_are_the_same_bits_whatever_the_chunking(tmp_path):
    # GPU design-point rows differed in the last bit between chunk sizes (48 of 3,672 rows at 40
    # against 5): the model's sums depended on how many runs a chunk held. The real model here.
    tables = []
    # One set of workload files for both runs: a .nmw file holds its write time (zip entries, 2 s
    # resolution), so files written apart get other shas, hence other point ids.
    workloads = make_workloads(tmp_path)
    for size, workers in ((3, 1), (40, 2)):
        where = tmp_path / f"c{size}"
        where.mkdir()
        cfg = write_config(where, workloads=workloads, gpus=["h100_sxm", "a100_sxm"], bits=[16, 8], chunk_size=size)
        api.run(cfg, where / "out", workers=workers, progress=False)
        tables.append(store.read_table(where / "out").to_pandas().sort_values("point_id").reset_index(drop=True))
    a, b = tables
    assert list(a.point_id) == list(b.point_id) and (a.design == "h100_sxm").any()
    assert [c for c in a.columns if not a[c].equals(b[c])] == []


# ----------------------------------------------------------------------------- one sweep per DIR
def _checking_lock(out: Path, seen: list):
    """fake_evaluate that records, per point, whether ``out``'s lock is held and by what (the sweep
    runs in this process)."""
    from hwmodel.io import is_locked, lock_holder

    def evaluate(point: dict) -> dict:
        seen.append((is_locked(out / engine.LOCK), lock_holder(out / engine.LOCK)))
        return fake_evaluate(point)
    return evaluate


def test_a_sweep_holds_its_dir_while_it_runs_and_releases_it_when_it_ends(tmp_path):
    from hwmodel.io import is_locked

    cfg = write_config(tmp_path, patterns=["dense", "2:4"], bits=[8])
    out = tmp_path / "out"
    seen: list = []
    first = api.run(cfg, out, workers=1, evaluate=_checking_lock(out, seen), progress=False)
    assert seen and all(held for held, _ in seen), "the lock is held while points are evaluated"
    assert seen[0][1].startswith(f"nmlab sweep (pid {os.getpid()} on ")  # the holder as a refusal names it
    assert not is_locked(out / engine.LOCK) and (out / engine.LOCK).read_text() == ""  # released, record cleared
    # a sweep afterwards on the same DIR runs: it resumes (nothing to evaluate) and gives the same table
    again = api.run(cfg, out, workers=1, evaluate=fake_evaluate, progress=False)
    assert (again["already_done"], again["evaluated"]) == (first["points"], 0)
    assert not is_locked(out / engine.LOCK)


def test_a_sweep_that_fails_releases_its_dir(tmp_path):
    from hwmodel.io import is_locked

    def broken(point: dict) -> dict:
        raise NmlabError("design: broken on purpose")

    cfg = write_config(tmp_path, patterns=["dense"], bits=[8])
    out = tmp_path / "out"
    with pytest.raises(NmlabError, match="broken on purpose"):
        api.run(cfg, out, workers=1, evaluate=broken, progress=False)
    assert (out / engine.LOCK).is_file() and not is_locked(out / engine.LOCK)
    assert api.run(cfg, out, workers=1, evaluate=fake_evaluate, progress=False)["evaluated"] > 0


def test_a_process_forked_under_the_lock_does_not_keep_it_when_its_parent_is_killed(tmp_path):
    """A flock belongs to the open file, which forked children share: a sweep's pool workers, left
    running when the sweep alone is SIGKILLed, kept its DIR locked, so the same command could not
    resume. Children forked while the lock is held let go of their copy."""
    from hwmodel.io import is_locked

    lock = tmp_path / "sweep.lock"
    code = textwrap.dedent(
        """
        import multiprocessing, os, sys, time
        from hwmodel.io import exclusive_lock

        def child():
            print(os.getpid(), flush=True)  # the child's fork hooks have run by now
            time.sleep(60)

        with exclusive_lock(sys.argv[1], False, "nmlab sweep"):
            multiprocessing.get_context("fork").Process(target=child).start()
            time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True, env=env)
    # The child prints its pid, not the parent: the parent could be killed before the child has run
    # its fork hook, and the test would then see the lock held (it failed so on a loaded machine).
    child = int(proc.stdout.readline())
    try:
        assert is_locked(lock)
        proc.kill()
        proc.wait()
        assert os.path.exists(f"/proc/{child}") or sys.platform != "linux", "the child outlives its parent"
        assert not is_locked(lock)
    finally:
        proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` (pid -> start time, so a reused pid is not taken
    for one of them), from /proc (psutil is not a dependency)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and stat[1] == str(pid) and stat[0] != "Z":
                found[int(entry)] = stat[19]
    return found


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (state, ppid, ..., starttime at [19]); None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()
    except OSError:
        return None


def alive(pid: int, start: str) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[19] == start  # a zombie has ended


_ORPHAN = """\
import os, sys, time
from sweeps import engine

how = sys.argv[1]
if how == "poll":
    engine._PR_SET_PDEATHSIG = -1  # an option prctl refuses: the fallback that looks at the parent pid
    engine.PARENT_POLL_S = 0.05
parent = os.getpid()
child = os.fork()
if child == 0:
    if how == "already dead":
        while os.getppid() == parent:  # the parent ends before the child is set up
            time.sleep(0.01)
    engine._end_with_parent(parent)
    os.write(1, b"ready\\n")  # one write each: the two processes share the pipe
    time.sleep(60)
    os._exit(0)
os.write(1, b"%d\\n" % child)
if how == "already dead":
    os._exit(0)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the process in /proc")
@pytest.mark.parametrize("how", ["prctl", "poll", "already dead"])
def test_a_pool_worker_ends_when_its_parent_is_killed(how):
    """The start-up of a local worker (:func:`sweeps.engine._end_with_parent`): killed alone, its
    parent takes the worker with it: by the kernel's parent-death signal, by the fallback that
    looks at the parent pid, or at once where the parent died before the worker was set up."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN, how], stdout=subprocess.PIPE, text=True, env=env)
    # The child's pid (from the parent) and, where the parent lives on, the child's "ready", in either order.
    lines = sorted(proc.stdout.readline().strip() for _ in range(1 if how == "already dead" else 2))
    child = int(lines[0])
    start = (_stat(child) or [None] * 20)[19]  # None: ended already
    try:
        if how != "already dead":
            assert lines[1:] == ["ready"] and alive(child, start), lines
            proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while alive(child, start) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(child, start), "the worker outlived its parent"
    finally:
        proc.kill()
        if alive(child, start):
            os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("kind", ["directory", "symbolic link"])
def test_a_lock_file_that_is_no_regular_file_is_one_line_and_nothing_is_written(tmp_path, kind):
    """The holder writes its record into DIR/sweep.lock: a link there would have it written over
    the file the link points to."""
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    if kind == "directory":
        (out / engine.LOCK).mkdir()
    else:
        (out / engine.LOCK).symlink_to(target)
    with pytest.raises(NmlabError, match=f"sweep.lock: is a {kind}; the lock file of its folder must be a regular file"):
        api.run(write_config(tmp_path), out, workers=1, evaluate=fake_evaluate, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [engine.LOCK] and target.read_text() == "keep me\n"


def test_points_a_design_cannot_run_are_left_out_and_said_so(tmp_path):
    """edge_ws has no 16-bit datatype, flex_nm has bf16; neither env has a trained unstructured
    workload: 2 envs x 2 patterns x (edge_ws at 8 + flex_nm at 8 and 16) = 12 points, and the plan
    names both gaps."""
    cfg = load_config(write_config(tmp_path, patterns=["dense", "2:4", "unstructured"], bits=[8, 16],
                                   scenarios=[{"scenario": "inference", "batch": 1}]))
    p = plan(cfg)
    points = list(p.points())
    assert len(points) == len(p) == 12
    assert sorted({(pt["design"], pt["bits"]) for pt in points}) == [("edge_ws", 8), ("flex_nm", 8), ("flex_nm", 16)]
    assert {pt["pattern"] for pt in points} == {"dense", "2:4"}
    assert p.skipped == ["edge_ws: 16 bits", "unstructured: no trained unstructured workload for Ant-v5, Hopper-v5"]


def _sigint_ignored(pid: int) -> bool:
    ign = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("SigIgn:"))
    return bool(int(ign.split()[1], 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the workers' signal masks in /proc")
def test_ctrl_c_is_taken_where_the_parent_waits_and_never_by_a_worker(tmp_path):
    """Ctrl-C of a pool sweep hung 2 times in 20: a worker that took the terminal's SIGINT died
    holding the result queue's lock, and the parent's KeyboardInterrupt could land inside
    concurrent.futures holding a future's lock; either way the pool's shutdown waited forever.
    Workers now ignore SIGINT, and the parent turns it into a KeyboardInterrupt where collect()
    waits; its own handler is back once the pool is closed."""
    before = signal.getsignal(signal.SIGINT)
    pool = engine._Pool(2, None, tmp_path)
    try:
        assert signal.getsignal(signal.SIGINT) == pool._on_sigint
        pool.pending[pool.pool.submit(time.sleep, 0.5)] = 0
        pids = list(pool.pool._processes)
        deadline = time.monotonic() + 60  # each worker ignores SIGINT once its start-up has run
        while not all(_sigint_ignored(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pids) == 2 and all(_sigint_ignored(pid) for pid in pids)
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt here, where the test's code runs
        assert pool.interrupted and signal.getsignal(signal.SIGINT) == before  # a second Ctrl-C is the usual one
        with pytest.raises(KeyboardInterrupt):
            pool.collect()
    finally:
        t0 = time.monotonic()
        pool.close()
    assert time.monotonic() - t0 < 30 and signal.getsignal(signal.SIGINT) == before
    quiet = engine._Pool(2, None, tmp_path)  # closed without an interrupt: the handler is restored too
    quiet.close()
    assert signal.getsignal(signal.SIGINT) == before


def test_a_pool_sweep_from_another_thread_leaves_ctrl_c_to_the_main_thread(tmp_path):
    """signal.signal may only be called from the main thread (ValueError elsewhere): a pool made in
    another thread sets no handler, and its chunks are collected as usual."""
    import threading

    before = signal.getsignal(signal.SIGINT)
    seen: dict = {}

    def work() -> None:
        try:
            pool = engine._Pool(2, None, tmp_path)
            try:
                seen["handler"] = signal.getsignal(signal.SIGINT)
                pool.pending[pool.pool.submit(abs, -3)] = 7
                seen["collected"] = pool.collect()
            finally:
                pool.close()
        except BaseException as exc:  # noqa: BLE001  (reported below, in the test's thread)
            seen["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and "error" not in seen, seen.get("error")
    assert seen["handler"] == before and seen["collected"] == [(7, 3)]
    assert signal.getsignal(signal.SIGINT) == before


def test_a_second_sweep_in_one_process_reads_a_rewritten_workload_as_it_is_now(tmp_path):
    """Workload and design files were memoised per process by path: a workload rewritten between
    two sweeps of one process gave the second sweep the first file's sha and figures."""
    from sweeps.grid import file_sha

    def sweep(hidden: int, out: str) -> dict:
        wl = synthetic_td3_workload(11, hidden, "dense")
        wl.meta.update(env="Hopper-v5", sparsity="dense")
        save_workload(wl, tmp_path / "w.nmw")
        cfg = parse_config({"workloads": [str(tmp_path / "w.nmw")], "patterns": ["dense"], "bits": [8],
                            "designs": ["edge_ws"], "scenarios": [{"scenario": "inference", "batch": 1}]},
                           base=tmp_path)
        api.run(cfg, tmp_path / out, workers=1, progress=False)
        (row,) = pq.read_table(tmp_path / out / "points.parquet").to_pylist()
        assert row["workload_sha"] == file_sha(tmp_path / "w.nmw")
        return row

    small, big = sweep(3, "a"), sweep(6, "b")
    assert big["macs_dense"] > small["macs_dense"]


def test_a_ctrl_c_after_the_last_chunk_came_in_still_interrupts_the_sweep(tmp_path, monkeypatch):
    """The pool's handler only sets a flag that collect() acts on: a Ctrl-C after the last chunk
    was collected (while its part joined points.parquet) was dropped, and the sweep ran on to the
    end as if no key had been pressed."""
    from sweeps.config import SweepConfig

    cfg = SweepConfig(patterns=["dense"], bits=[8], designs=["edge_ws"], gpus=[],
                      scenarios=[Scenario("inference", 1)], quality=None, chunk_size=1000)
    real = engine._Pool.collect

    def collect_then_ctrl_c(self):
        got = real(self)
        os.kill(os.getpid(), signal.SIGINT)  # the pool's handler: a flag, no KeyboardInterrupt here
        return got

    monkeypatch.setattr(engine._Pool, "collect", collect_then_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        api.run(cfg, tmp_path / "out", workers=2, progress=False)  # one chunk: its collect() is the last
    assert signal.getsignal(signal.SIGINT) == before
    assert not (tmp_path / "out" / "points.parquet").exists() and store.list_parts(tmp_path / "out")


def test_one_shot_n_m_of_a_sparse_donor_keeps_no_zero_weight():
    """An env without dense TD3 prunes whichever agent it has: a gmp 2:8 Ant-v5 agent pruned one-shot to 4:8
    kept, in every group of 8, its 2 weights and 2 of its zeros (ties to the lower index), so the mask broke 2:4
    and the designs ran it dense (1.00x), while 1:2 of the same agent (no zeros kept) ran as 2:4 (1.78x): the
    figures hung on which zeros the tie-break picked. A zero weight is never kept: 4:8 of a 2:8 agent is its
    own 2:8 mask, a valid 4:8 mask (at most 4 per group) that fits 2:4."""
    import numpy as np

    from sweeps.evaluate import prune_one_shot

    wl = synthetic_td3_workload(105, 8, pattern="2:8", hidden=(64, 64), seed=0, with_weights=True)
    for pattern in ("4:8", "3:8", "1:2"):
        pruned = prune_one_shot(wl, pattern)
        for donor, layer in zip(wl.layers, pruned.layers):
            assert layer.pattern == pattern
            assert not (layer.mask & (donor.weight == 0)).any(), (pattern, layer.name)
            n, m = map(int, pattern.split(":"))
            cols = -(-layer.in_features // 4) * 4
            fours = np.pad(layer.mask, ((0, 0), (0, cols - layer.in_features))).reshape(layer.out_features, -1, 4)
            assert fours.sum(-1).max() <= 2, (pattern, layer.name)  # within the donor's 2:8, so within 2:4
            if pattern == "4:8":
                assert (layer.mask == (donor.weight != 0)).all(), layer.name


def test_one_shot_unstructured_masks_of_weightless_layers_are_the_same_every_run():
    """A layer without weights is pruned at positions seeded by its name: two sweeps (or two workers)
    get the same mask, hence the same figures for the same point id."""
    from sweeps.evaluate import prune_one_shot

    wl = synthetic_td3_workload(11, 3, pattern="dense", hidden=(32, 32), seed=0, with_weights=False)
    assert all(layer.weight is None for layer in wl.layers)
    a, b = prune_one_shot(wl, "unstructured:0.75"), prune_one_shot(wl, "unstructured:0.75")
    for la, lb in zip(a.layers, b.layers):
        assert la.mask is not None and (la.mask == lb.mask).all(), la.name


def test_a_worker_copies_a_file_again_for_another_sweep(tmp_path, monkeypatch):
    """A worker kept one copy per driver path: serving a second sweep of the same driver (a Ray instance the
    caller started) after the file was edited, it evaluated the first sweep's bytes."""
    import ray

    from sweeps import engine

    monkeypatch.setattr(ray, "get", lambda ref: ref)  # the "object store" hands back the bytes themselves
    monkeypatch.setattr(engine, "_local_copies", {})
    first = engine._materialize(str(tmp_path / "sweep1"), "/somewhere/edge_ws.yaml", b"first")
    second = engine._materialize(str(tmp_path / "sweep2"), "/somewhere/edge_ws.yaml", b"edited")
    assert Path(first).read_bytes() == b"first" and Path(second).read_bytes() == b"edited"
    assert Path(first).name == Path(second).name == "edge_ws.yaml"  # a design's name is its file stem
    assert engine._materialize(str(tmp_path / "sweep2"), "/somewhere/edge_ws.yaml", b"not read") == second


@pytest.mark.parametrize("item", ["hopper_dense_s0.nmw", "hopper_dense_s0"])
def test_a_bundled_workload_listed_by_name_is_answered_with_its_path(tmp_path, item):
    # docs/sweeps.md "Your own agent in a sweep": list bundled workloads beside yours by path. A bare
    # name said only "no such file" and left the user to find hwmodel/data/workloads.
    from hwmodel.errors import NmlabError
    from hwmodel.io import data_path
    from sweeps.config import parse_config

    with pytest.raises(NmlabError) as exc:
        parse_config({"workloads": [item]}, base=tmp_path)
    assert str(exc.value) == (f"sweep config: workloads[0]: no such file: {item} (the bundled workload of that name is "
                              f"{data_path('workloads', 'hopper_dense_s0.nmw')})")
    # a file of that name beside the config is the user's own, and is taken
    (tmp_path / "hopper_dense_s0.nmw").write_bytes(data_path("workloads", "hopper_dense_s0.nmw").read_bytes())
    assert parse_config({"workloads": ["hopper_dense_s0.nmw"]}, base=tmp_path).workloads == [str(tmp_path / "hopper_dense_s0.nmw")]


def test_a_cluster_sweep_that_cannot_remove_its_input_copies_says_where_they_stay(tmp_path, monkeypatch, capsys):
    """Removing the workers' input copies on a cluster's nodes can fail after the sweep's last chunk (the
    cluster lost, a Ray whose API differs): the sweep ends as it would have, and one line on stderr names
    the folder the copies may stay in, rather than nothing at all."""
    import hwmodel.raycluster as raycluster

    def unreachable(*args, **kw):
        raise ConnectionError("GCS unreachable\nretrying...")

    monkeypatch.setattr(raycluster, "on_every_node", unreachable)
    pool = object.__new__(engine._RayPool)
    pool.ray, pool.pending, pool.started, pool.one_machine, pool.lost = None, [], False, False, False
    pool.inputs_root = str(tmp_path / "nmlab-ray-inputs-x")
    pool.close()
    err = capsys.readouterr().err.splitlines()
    assert err == [f"nmlab sweep: note: the workers' input copies may stay in {pool.inputs_root} on the cluster's "
                   "nodes (removing them: ConnectionError: GCS unreachable)"], err
