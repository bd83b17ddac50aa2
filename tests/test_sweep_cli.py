"""nmlab sweep end to end with the real hardware model: CLI, rows, SIGKILL + resume, Ray, default grid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwmodel.cli import main
from hwmodel.simulate import simulate
from hwmodel.workload import bundled_workloads, load_workload
from sweeps import store
from tests.test_sweep_engine import alive, children, make_workloads

NMLAB = [sys.executable, "-m", "hwmodel"]


def config(tmp: Path, **overrides) -> Path:
    data = {"workloads": make_workloads(tmp), "patterns": ["dense", "2:4", "1:8"], "bits": [8, 4],
            "designs": ["edge_ws", "flex_nm"], "quality": None,
            "scenarios": [{"scenario": "inference", "batch": 1}, {"scenario": "train_step", "batch": 256}]}
    data.update(overrides)
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_rows_are_the_models_figures(tmp_path):
    cfg = config(tmp_path)
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    df = pd.read_parquet(tmp_path / "out" / "points.parquet")
    assert len(df) == 2 * 3 * 2 * 2 * 2 and df.point_id.is_unique
    # Spot-check rows against a direct simulate() call on the same inputs.
    for _, row in df[df.mask_source == "trained"].sample(6, random_state=1).iterrows():
        wl = load_workload(tmp_path / f"{row.workload}.nmw")
        res = simulate(wl, row.design, batch=int(row.batch), bits=int(row.bits), scenario=row.scenario)
        assert row.latency_s == pytest.approx(res.total.latency_s)
        assert row.energy_pj == pytest.approx(res.total.energy_pj)
        assert row.energy_dram_pj == pytest.approx(res.total.energy_dram_pj)
        assert bool(row.fits_in_sram) == res.fits_in_sram
    # Every figure the model gives is a column, plus the config and the derived ones.
    for col in ("latency_s", "cycles", "energy_pj", "energy_mac_pj", "energy_sram_pj", "energy_metadata_pj", "energy_dram_pj",
                "bits_dram_read", "bits_sram_read", "bits_metadata", "model_bytes", "fits_in_sram",
                "speedup_vs_dense", "energy_ratio_vs_dense", "speedup_vs_dense_ref", "energy_ratio_vs_dense_ref",
                "return_mean", "return_missing", "mask_source", "point_id", "env", "pattern", "bits", "design",
                "scenario", "batch"):
        assert col in df.columns, col
    # Sparsity on a design that exploits it is faster than dense at the same bits.
    edge = df[(df.design == "edge_ws") & (df.scenario == "inference") & (df.bits == 8)].set_index(["env", "pattern"])
    for env in df.env.unique():
        assert edge.loc[(env, "2:4"), "latency_s"] < edge.loc[(env, "dense"), "latency_s"]
        assert edge.loc[(env, "2:4"), "model_bytes"] < edge.loc[(env, "dense"), "model_bytes"]
    # Model size: inference stores the actor, a training step all six networks; dense 8-bit = 1 byte per weight.
    for _, row in df[(df.pattern == "dense") & (df.bits == 8)].iterrows():
        wl = load_workload(tmp_path / f"{row.workload}.nmw")
        layers = wl.network("actor") if row.scenario == "inference" else wl.layers
        assert row.model_bytes == sum(layer.in_features * layer.out_features for layer in layers)
    # One-shot points are marked and have no return.
    one_shot = df[df.pattern == "1:8"]
    assert (one_shot.mask_source == "one-shot").all() and one_shot.return_missing.all()


def test_quality_join_averages_seeds_and_marks_missing(tmp_path):
    q = tmp_path / "quality.csv"
    q.write_text(
        "env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
        "Hopper-v5,rnm-td3,2:4,8,0,1000,10,3000,50\n"
        "Hopper-v5,rnm-td3,2:4,8,1,1000,10,3200,40\n"
        "Hopper-v5,td3,dense,8,0,1000,10,2900,10\n"
        "Hopper-v5,rnm-td3,1:8,8,0,1000,10,2500,10\n"
        "Hopper-v5,gmp,2:4,8,0,1000,10,100,10\n"  # another method's agent: never averaged in
        "Hopper-v5,gmp,2:4,4,0,1000,10,777,10\n"  # nor used where this method has no row
    )
    cfg = config(tmp_path, quality=str(q))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    df = pd.read_parquet(tmp_path / "out" / "points.parquet")
    h = df[df.env == "Hopper-v5"]
    assert (h[(h.pattern == "2:4") & (h.bits == 8)].return_mean == 3100).all()
    assert (h[(h.pattern == "2:4") & (h.bits == 8)].return_seeds == 2).all()
    # The spread over seeds is the sample standard deviation: |3000 - 3200| / sqrt(2); one seed has none.
    assert h[(h.pattern == "2:4") & (h.bits == 8)].return_std_seeds.tolist() == pytest.approx(
        [200 / 2 ** 0.5] * int(((h.pattern == "2:4") & (h.bits == 8)).sum()), rel=1e-12)
    assert h[(h.pattern == "dense") & (h.bits == 8)].return_std_seeds.isna().all()
    assert (h[(h.pattern == "dense") & (h.bits == 8)].return_mean == 2900).all()
    # 1:8 here is pruned one-shot from dense: the trained 1:8 agent's return does not apply.
    assert h[h.pattern == "1:8"].return_missing.all()
    assert h[h.bits == 4].return_missing.all() and df[df.env == "Ant-v5"].return_missing.all()


def test_sigkill_of_the_cli_mid_run_then_same_command_finishes_exactly(tmp_path):
    cfg = config(tmp_path, chunk_size=1, bits=[8, 4], patterns=["dense", "2:4", "1:4", "1:8"])
    ref = tmp_path / "ref"
    assert main(["sweep", str(cfg), "--out", str(ref), "--workers", "2", "--quiet"]) == 0
    expected = pd.read_parquet(ref / "points.parquet")

    out = tmp_path / "out"
    cmd = [*NMLAB, "sweep", str(cfg), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out.exists() and len(store.list_parts(out)) >= 8):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(store.list_parts(out)) < len(expected), "killed before the end"
    assert not (out / "points.parquet").exists()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already done" in again.stdout
    got = pd.read_parquet(out / "points.parquet")
    assert got.equals(expected)
    assert "sweep:" in again.stderr and "pt/s" in again.stderr  # the tqdm bar: done/total, rate, time left


def _sweep_with_8_parts(tmp_path: Path, stdout) -> tuple[Path, Path, list[str], pd.DataFrame, subprocess.Popen]:
    """A 2-worker `nmlab sweep --quiet` in a session of its own, once 8 part files exist: (config, out, the
    command, the uninterrupted table, the process), for the tests that stop it there."""
    cfg = config(tmp_path, chunk_size=1, bits=[8, 4], patterns=["dense", "2:4", "1:4", "1:8"])
    ref = tmp_path / "ref"
    assert main(["sweep", str(cfg), "--out", str(ref), "--workers", "2", "--quiet"]) == 0
    expected = pd.read_parquet(ref / "points.parquet")

    out = tmp_path / "out"
    cmd = [*NMLAB, "sweep", str(cfg), "--out", str(out), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=stdout, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and len(store.list_parts(out)) >= 8):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return cfg, out, cmd, expected, proc


def _same_command_finishes_exactly(cmd: list[str], out: Path, kept: int, expected: pd.DataFrame) -> None:
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{kept} already done" in again.stdout, again.stdout
    assert pd.read_parquet(out / "points.parquet").equals(expected)


def test_ctrl_c_says_what_is_kept_and_the_same_command_finishes_exactly(tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group: the sweep and its pool workers) printed only
    "nmlab sweep: interrupted"; it now says how many points are kept and the command that finishes the rest."""
    cfg, out, cmd, expected, proc = _sweep_with_8_parts(tmp_path, subprocess.DEVNULL)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err[-2000:]
    kept = len(store.done_ids(out))
    assert 8 <= kept < len(expected), "interrupted before the end"
    line = err.strip().splitlines()[-1]
    assert line == (f"nmlab sweep: interrupted; the {kept:,} points evaluated so far are kept in {out / 'parts'}; "
                    f"the same command evaluates only the rest: nmlab sweep {cfg} --out {out} --workers 2 --quiet"), err[-2000:]
    assert "Traceback" not in err
    _same_command_finishes_exactly(cmd, out, kept, expected)


@pytest.mark.parametrize("target", ["sweep process", "process group"])
def test_sigterm_says_what_is_kept_exits_143_and_the_same_command_finishes_exactly(tmp_path, target):
    """A scheduler's SIGTERM (`timeout` and Kubernetes signal the sweep process, Slurm every process of
    the job) ended `nmlab sweep` at once with status 143 and no word. Now it stops as Ctrl-C does: the
    same one line (points kept, the command that finishes the rest), status 143, no traceback, no
    points.parquet half-written, and the same command finishes to the uninterrupted table."""
    cfg, out, cmd, expected, proc = _sweep_with_8_parts(tmp_path, subprocess.PIPE)
    if target == "process group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    kept = len(store.done_ids(out))
    assert 8 <= kept < len(expected), "stopped before the end"
    assert err.strip().splitlines() == [
        f"nmlab sweep: interrupted; the {kept:,} points evaluated so far are kept in {out / 'parts'}; "
        f"the same command evaluates only the rest: nmlab sweep {cfg} --out {out} --workers 2 --quiet"], err[-2000:]
    assert stdout == "" and not (out / "points.parquet").exists()
    _same_command_finishes_exactly(cmd, out, kept, expected)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
def test_pool_workers_end_when_the_sweep_process_alone_is_killed(tmp_path):
    """SIGKILL of the sweep process only (not its group) left its pool workers running: one
    blocked on the task queue never sees EOF (its siblings hold the queue's write end) and lived
    on. Now each worker is told of its parent's death and ends within moments."""
    cfg = config(tmp_path, chunk_size=1, bits=[8, 4], patterns=["dense", "2:4", "1:4", "1:8"])
    out = tmp_path / "out"
    cmd = [*NMLAB, "sweep", str(cfg), "--out", str(out), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 or not (out.exists() and len(store.list_parts(out)) >= 4):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the sweep did not get going"
            workers = children(proc.pid)
            time.sleep(0.005)
        assert len(workers) == 2, workers
        proc.kill()  # the sweep process alone
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert not (out / "points.parquet").exists(), "killed mid-run"
        deadline = time.monotonic() + 5
        while any(alive(pid, start) for pid, start in workers.items()) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [pid for pid, start in workers.items() if alive(pid, start)]
        assert not left, f"pool workers {left} outlived the killed sweep"
    finally:
        proc.kill()
        for pid, start in workers.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def test_ray_and_pool_give_the_same_rows(tmp_path):
    import ray
    cfg = config(tmp_path, patterns=["dense", "2:4"], bits=[8])
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "pool"), "--workers", "2", "--quiet"]) == 0
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "ray"), "--workers", "2", "--ray", "--quiet"]) == 0
    assert not ray.is_initialized()
    a = pd.read_parquet(tmp_path / "pool" / "points.parquet")
    b = pd.read_parquet(tmp_path / "ray" / "points.parquet")
    assert len(a) == 2 * 2 * 2 * 2 and a.equals(b)


def test_bad_config_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bits: [8, 99]\n")
    out = subprocess.run([*NMLAB, "sweep", str(bad), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == "nmlab sweep: error: sweep config: bits[1]: must be an integer from 1 to 32, got 99"


@pytest.mark.parametrize("name", ["sweep.json", "points.parquet", "sweep.lock"])
def test_an_out_where_the_sweep_would_write_over_its_config_is_refused(tmp_path, capsys, name):
    # A JSON config named sweep.json swept into its own folder: the manifest replaced it (exit 0),
    # and the same command then failed on the manifest's keys ("complete: unknown key").
    cfg = config(tmp_path, workloads=[str(w) for w in make_workloads(tmp_path)[:1]], patterns=["dense"], bits=[8],
                 designs=["edge_ws"], scenarios=[{"scenario": "inference", "batch": 1}])
    target = tmp_path / name
    target.write_text(cfg.read_text())
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["sweep", str(target), "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nmlab sweep: error: --out: {tmp_path}: the sweep writes its {name} there, which is your sweep "
                   f"config {target}; give another --out (or rename the sweep config)"]
    assert target.read_text() == cfg.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_workers_with_a_cluster_address_is_one_line_exit_2(tmp_path):
    # --workers was silently ignored where a cluster's CPUs run the chunks (nmlab campaign refused it).
    out = subprocess.run([*NMLAB, "sweep", "--ray", "auto", "--workers", "2", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and not (tmp_path / "o").exists()
    assert out.stderr.strip().splitlines() == ["nmlab sweep: error: --workers: sets the local pool's or local Ray "
                                               "instance's CPUs; a cluster (--ray ADDRESS) has its own"]


def test_default_sweep_and_report_on_bundled_inputs(tmp_path):
    assert bundled_workloads(), "no bundled workloads in hwmodel/data/workloads: the default sweep has no input"
    out = tmp_path / "results"
    run = subprocess.run([*NMLAB, "sweep", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    df = pd.read_parquet(out / "points.parquet")
    from hwmodel.design import bundled_designs
    from sweeps.config import DEFAULT_GPUS

    assert set(df.design) == set(bundled_designs()) | set(DEFAULT_GPUS)  # the GPUs beside the accelerators
    # "unstructured" (trained RLx2 / gradual-pruning masks) appears once such workloads are bundled
    grid = {"dense", "2:4", "1:4", "1:8", "unstructured:0.9"}
    assert grid <= set(df.pattern) <= grid | {"unstructured"}
    assert set(df.scenario) == {"inference", "train_step"}
    assert df.point_id.is_unique
    rep = subprocess.run([*NMLAB, "report", str(out)], capture_output=True, text=True, timeout=600)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (out / "report" / "index.html").is_file() and (out / "report" / "fronts.json").is_file()


# ----------------------------------------------------------------------------- one sweep per DIR
_HOLD = ("import sys\nfrom hwmodel.io import exclusive_lock\n"
         "with exclusive_lock(sys.argv[1], False, 'nmlab sweep') as mine:\n"
         "    print(mine, flush=True)\n    sys.stdin.read()\n")


def _hold(lock: Path) -> subprocess.Popen:
    """Another process holding ``lock`` as a running sweep does (until its stdin is closed)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "True"
    return proc


def _tree(root: Path) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("ray", [False, True])
def test_a_dir_another_sweep_holds_is_refused_in_one_line_before_anything(tmp_path, monkeypatch, capsys, ray):
    """Two sweeps on one DIR raced on sweep.json and points.parquet (one could overwrite the
    other's table with fewer points or another grid's rows): the second is refused in one line
    naming DIR and its holder, exit 2, before Ray is joined and before anything is written."""
    from sweeps import engine

    monkeypatch.setattr(engine, "start_ray", lambda *a: pytest.fail("Ray joined"))
    out = tmp_path / "out"
    cfg = config(tmp_path, patterns=["dense", "2:4"], bits=[8])
    assert main(["sweep", str(cfg), "--out", str(out), "--workers", "1", "--quiet"]) == 0  # the holder's earlier run
    capsys.readouterr()
    holder = _hold(out / engine.LOCK)
    try:
        before = _tree(out)
        code = main(["sweep", "--out", str(out), "--quiet", *(["--ray"] if ray else ["--workers", "1"])])
        after = _tree(out)
    finally:
        holder.stdin.close()
        holder.wait()
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and not captured.out, captured.err  # no plan notes either
    assert err.startswith(f"nmlab sweep: error: --out: {out} is in use by another nmlab sweep (pid {holder.pid} on "), err
    assert after == before  # nothing written, the holder's sweep.json and table untouched


def test_a_sweep_that_takes_the_lock_after_the_first_look_is_refused_there(tmp_path, monkeypatch, capsys):
    """A sweep that took the lock between the first look and the taking (after Ray): refused at
    the taking, in one line, with no sweep.json or part written."""
    from hwmodel.io import FolderLock
    from sweeps import engine

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(FolderLock, "refuse_if_held", lambda self: None)  # the other sweep starts just after the look
    holder = _hold(out / engine.LOCK)
    try:
        code = main(["sweep", str(config(tmp_path)), "--out", str(out), "--workers", "1", "--quiet"])
    finally:
        holder.stdin.close()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"nmlab sweep: error: --out: {out} is in use by another nmlab sweep (pid {holder.pid} on "), err
    assert sorted(p.name for p in out.iterdir()) == [engine.LOCK]


@pytest.mark.parametrize("keep, scenario, expected", [
    ({"actor"}, "train_step", "train_step on workload mine_s0: train_step needs networks actor, critic1 and critic2 "
                              "(a TD3 update); missing critic1, critic2 (this file's networks: actor)"),
    ({"critic1", "critic2"}, "inference", "inference on workload mine_s0: inference runs the policy, the network "
                                          "named 'actor'; this file's networks are critic1, critic2"),
])
def test_a_workload_without_a_scenarios_networks_is_refused_when_the_sweep_plans(tmp_path, capsys, keep, scenario,
                                                                                   expected):
    """An agent trained elsewhere with an actor only, in a grid with train_step, stopped the sweep at its first
    train-step point, after the inference points had run; the plan refuses it now, naming the workload and the
    scenario, before anything is written."""
    from hwmodel.workload import Workload, save_workload, synthetic_td3_workload

    wl = synthetic_td3_workload(11, 3, pattern="dense", seed=0, with_weights=True)
    save_workload(Workload(layers=[x for x in wl.layers if x.network in keep], meta={"env": "Mine-v0"}),
                  tmp_path / "mine_s0.nmw")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"workloads": ["mine_s0.nmw"], "patterns": ["dense"], "bits": [8],
                                   "designs": ["edge_ws"], "gpus": "none", "quality": "none",
                                   "scenarios": [{"scenario": "inference", "batch": 1},
                                                 {"scenario": "train_step", "batch": 256}]}))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nmlab sweep: error: sweep config: scenarios: {expected}"), err
    assert not (tmp_path / "out").exists()
