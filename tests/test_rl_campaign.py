"""Campaign order and names, and the published final-return table (from eval CSVs)."""

import csv
import json

import pytest

import subprocess
import sys

from rl.campaign import campaign_runs, command, run_name, running_outs
from rl.publish import publish, run_label


def test_campaign_order_and_names(tmp_path):
    runs = campaign_runs(2)
    assert runs[:4] == [("Hopper-v5", "dense", 0), ("Hopper-v5", "2:4", 0), ("HalfCheetah-v5", "dense", 0), ("HalfCheetah-v5", "2:4", 0)]
    assert runs[4:8] == [("Hopper-v5", "1:4", 0), ("Hopper-v5", "1:8", 0), ("HalfCheetah-v5", "1:4", 0), ("HalfCheetah-v5", "1:8", 0)]
    assert runs[8:12] == [("Hopper-v5", "rlx2", 0), ("Hopper-v5", "gmp", 0), ("HalfCheetah-v5", "rlx2", 0), ("HalfCheetah-v5", "gmp", 0)]
    assert [r[2] for r in runs[12:]] == [1] * 12 and len(set(runs)) == 24
    assert run_name("Hopper-v5", "2:4", 0) == "hopper_2of4_s0"
    assert run_name("HalfCheetah-v5", "dense", 1) == "halfcheetah_dense_s1"
    cmd = command("Hopper-v5", "1:8", 1, tmp_path / "r", 200_000, resume=True)
    assert cmd[:3] == ["nice", "-n", "5"] and cmd[-1] == "--resume"
    assert cmd[cmd.index("--sparsity") + 1] == "1:8" and cmd[cmd.index("--steps") + 1] == "200000"


def test_only_keeps_the_order_of_the_chosen_labels(tmp_path):
    runs = campaign_runs(2, only=["rlx2", "gmp"])
    assert runs == [r for r in campaign_runs(2) if r[1] in ("rlx2", "gmp")] and len(runs) == 8
    assert runs[4:] == [("Hopper-v5", "rlx2", 1), ("Hopper-v5", "gmp", 1), ("HalfCheetah-v5", "rlx2", 1),
                        ("HalfCheetah-v5", "gmp", 1)]
    out = subprocess.run([sys.executable, "-m", "rl.campaign", "--root", str(tmp_path), "--only", "rlx2", "--status"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert [line.split()[0] for line in out if line] == [
        "hopper_rlx2_s0", "halfcheetah_rlx2_s0", "hopper_rlx2_s1", "halfcheetah_rlx2_s1"]
    bad = subprocess.run([sys.executable, "-m", "rl.campaign", "--root", str(tmp_path), "--only", "2:8"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--only" in bad.stderr and "Traceback" not in bad.stderr


def test_method_runs_use_the_paper_sparsities(tmp_path):
    cmd = command("Hopper-v5", "rlx2", 0, tmp_path / "r", 200_000, resume=False)
    opt = lambda name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert (opt("--method"), opt("--actor-sparsity"), opt("--critic-sparsity")) == ("rlx2", "0.98", "0.95")
    cmd = command("HalfCheetah-v5", "rlx2", 1, tmp_path / "r", 200_000, resume=False)
    assert (opt("--actor-sparsity"), opt("--critic-sparsity"), opt("--rlx2-delta")) == ("0.9", "0.85", "2000")
    cmd = command("Hopper-v5", "gmp", 0, tmp_path / "r", 200_000, resume=False)
    assert (opt("--method"), opt("--sparsity"), opt("--qat-bits")) == ("gmp", "0.9", "8")
    assert "--resume" not in cmd


def test_running_outs_sees_a_training_process_by_its_out_dir(tmp_path):
    # A stand-in whose command line looks like `nmlab train --out DIR` (relative to its cwd).
    fake = tmp_path / "nmlab"
    fake.write_text("import time\ntime.sleep(30)\n")
    (tmp_path / "work").mkdir()
    proc = subprocess.Popen([sys.executable, str(fake), "train", "--out", "runs/x"], cwd=tmp_path / "work")
    try:
        import time

        deadline = time.time() + 10
        while str((tmp_path / "work" / "runs" / "x").resolve()) not in running_outs():
            assert time.time() < deadline, "the training process was not found"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert str((tmp_path / "work" / "runs" / "x").resolve()) not in running_outs()


def _fake_run(root, name, env, sparsity, seed, curve, **extra):
    d = root / name
    d.mkdir(parents=True)
    (d / "args.json").write_text(json.dumps({"env": env, "sparsity": sparsity, "seed": seed, "steps": 300, **extra}))
    with open(d / "eval.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "return_mean", "return_std", "episodes", "time_s"])
        for step, ret in curve:
            w.writerow([step, ret, 0, 10, 0])


def test_table_compares_with_dense_at_the_common_step(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root, "hopper_dense_s0", "Hopper-v5", "dense", 0, [(100, 10), (200, 20), (300, 30)])
    _fake_run(root, "hopper_2of4_s0", "Hopper-v5", "2:4", 0, [(100, 5), (200, 40)])  # unfinished
    rows = {r["sparsity"]: r for r in publish(root, tmp_path / "out", steps=300)}
    assert rows["dense"]["complete"] is True and rows["dense"]["final_return_mean"] == 20.0
    assert rows["dense"]["final_return_per_seed"] == "20"
    two = rows["2:4"]
    assert two["complete"] is False and two["steps_reached"] == "200"
    # At step 200: sparse mean(5, 40) = 22.5, dense mean(10, 20) = 15.
    assert two["fraction_of_dense"] == pytest.approx(1.5)
    assert two["compared_at_steps"] == 200 and two["compared_seeds"] == "0 / 0"
    out = tmp_path / "out"
    assert (out / "learning_curves_hopper.png").stat().st_size > 0
    assert (out / "hopper_2of4_s0" / "eval.csv").is_file()
    assert "| Hopper-v5 | 2:4 | 1 | 200 | False |" in (out / "final_returns.md").read_text()


def test_fraction_is_a_ratio_of_seed_means_at_the_furthest_common_step(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root, "hopper_dense_s0", "Hopper-v5", "dense", 0, [(100, 40), (300, 100)])
    _fake_run(root, "hopper_dense_s1", "Hopper-v5", "dense", 1, [(100, 60)])  # still training: left out at 300
    _fake_run(root, "hopper_2of4_s0", "Hopper-v5", "2:4", 0, [(100, 10), (300, 50)])
    _fake_run(root, "hopper_2of4_s1", "Hopper-v5", "2:4", 1, [(100, 20), (300, 250)])
    rows = {r["sparsity"]: r for r in publish(root, tmp_path / "out", steps=300)}
    two = rows["2:4"]
    assert two["seeds"] == 2 and two["final_return_per_seed"] == "30 / 135"  # mean of the last 3 evaluations
    assert two["final_return_mean"] == pytest.approx(82.5)
    # At 300: mean(30, 135) / dense seed 0's mean(40, 100) = 82.5 / 70; dense seed 1 has not reached 300.
    assert two["fraction_of_dense"] == pytest.approx(82.5 / 70, abs=1e-3)
    assert (two["compared_at_steps"], two["compared_seeds"]) == (300, "0,1 / 0")
    # A sparse side that is behind moves the step back to where it is and drops dense runs only if short.
    _fake_run(root, "hopper_1of4_s0", "Hopper-v5", "1:4", 0, [(100, 30)])
    rows = {r["sparsity"]: r for r in publish(root, tmp_path / "out", steps=300)}
    one, dense = rows["1:4"], rows["dense"]
    assert (one["compared_at_steps"], one["compared_seeds"]) == (100, "0 / 0,1")
    assert dense["final_return_per_seed"] == "70 / 60" and dense["steps_reached"] == "300/100"
    assert dense["final_return_mean"] == 70.0  # seed 1 has not reached 300: not in the mean
    assert one["fraction_of_dense"] == pytest.approx(30 / 50)  # dense at 100: mean(40, 60)


def test_no_fraction_against_a_non_positive_dense_return(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root, "halfcheetah_dense_s0", "HalfCheetah-v5", "dense", 0, [(100, -400)])
    _fake_run(root, "halfcheetah_2of4_s0", "HalfCheetah-v5", "2:4", 0, [(100, -500)])
    rows = {r["sparsity"]: r for r in publish(root, tmp_path / "out", steps=100)}
    assert rows["2:4"]["fraction_of_dense"] == "" and rows["dense"]["fraction_of_dense"] == ""


def test_method_labels_and_published_fractions(tmp_path):
    assert run_label({"method": "rlx2", "sparsity": "0.95", "actor_sparsity": "0.98", "critic_sparsity": "0.95"}) == "rlx2 0.98/0.95"
    assert run_label({"method": "rlx2", "sparsity": "0.9", "actor_sparsity": "", "critic_sparsity": ""}) == "rlx2 0.9/0.9"
    assert run_label({"method": "gmp", "sparsity": "0.9", "qat_bits": 8}) == "gmp 0.9 QAT8"
    assert run_label({"method": "rnm-td3", "sparsity": "2:4"}) == "2:4"
    root = tmp_path / "runs"
    _fake_run(root, "hopper_dense_s0", "Hopper-v5", "dense", 0, [(100, 10), (200, 20)], method="td3")
    _fake_run(root, "hopper_rlx2_s0", "Hopper-v5", "0.95", 0, [(100, 8), (200, 16)], method="rlx2",
              actor_sparsity="0.98", critic_sparsity="0.95")
    _fake_run(root, "hopper_gmp_s0", "Hopper-v5", "0.9", 0, [(100, 5), (200, 5)], method="gmp", qat_bits=8)
    rows = publish(root, tmp_path / "out", steps=200)
    assert [r["sparsity"] for r in rows] == ["dense", "gmp 0.9 QAT8", "rlx2 0.98/0.95"]
    by = {r["sparsity"]: r for r in rows}
    assert by["rlx2 0.98/0.95"]["fraction_of_dense"] == pytest.approx(0.8)  # mean(8, 16) / mean(10, 20)
    assert by["rlx2 0.98/0.95"]["published_fraction_of_dense"] == pytest.approx(0.97)  # Tan et al., Hopper 98/95
    assert by["gmp 0.9 QAT8"]["published_fraction_of_dense"] == ""
    assert "| Hopper-v5 | rlx2 0.98/0.95 | 1 | 200 | True | 12.0 | 12 | 0.8 | 200 | 0 / 0 | 0.97 |" in (tmp_path / "out" / "final_returns.md").read_text()
