"""Campaign order and names, and the published final-return table (from eval CSVs)."""

import csv
import json

import pytest

from rl.campaign import campaign_runs, command, run_name
from rl.publish import publish


def test_campaign_order_and_names(tmp_path):
    runs = campaign_runs(2)
    assert runs[:4] == [("Hopper-v5", "dense", 0), ("Hopper-v5", "2:4", 0), ("HalfCheetah-v5", "dense", 0), ("HalfCheetah-v5", "2:4", 0)]
    assert runs[4:8] == [("Hopper-v5", "1:4", 0), ("Hopper-v5", "1:8", 0), ("HalfCheetah-v5", "1:4", 0), ("HalfCheetah-v5", "1:8", 0)]
    assert [r[2] for r in runs[8:]] == [1] * 8 and len(set(runs)) == 16
    assert run_name("Hopper-v5", "2:4", 0) == "hopper_2of4_s0"
    assert run_name("HalfCheetah-v5", "dense", 1) == "halfcheetah_dense_s1"
    cmd = command("Hopper-v5", "1:8", 1, tmp_path / "r", 200_000, resume=True)
    assert cmd[:3] == ["nice", "-n", "5"] and cmd[-1] == "--resume"
    assert cmd[cmd.index("--sparsity") + 1] == "1:8" and cmd[cmd.index("--steps") + 1] == "200000"


def _fake_run(root, name, env, sparsity, seed, curve):
    d = root / name
    d.mkdir(parents=True)
    (d / "args.json").write_text(json.dumps({"env": env, "sparsity": sparsity, "seed": seed, "steps": 300}))
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
    two = rows["2:4"]
    assert two["complete"] is False and two["steps_reached"] == "200"
    # At step 200: sparse mean(5, 40) = 22.5, dense mean(10, 20) = 15.
    assert two["fraction_of_dense"] == pytest.approx(1.5)
    assert two["compared_at_steps"] == "200"
    out = tmp_path / "out"
    assert (out / "learning_curves_hopper.png").stat().st_size > 0
    assert (out / "hopper_2of4_s0" / "eval.csv").is_file()
    assert "| Hopper-v5 | 2:4 | 1 | 200 | False |" in (out / "final_returns.md").read_text()


def test_no_fraction_against_a_non_positive_dense_return(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root, "halfcheetah_dense_s0", "HalfCheetah-v5", "dense", 0, [(100, -400)])
    _fake_run(root, "halfcheetah_2of4_s0", "HalfCheetah-v5", "2:4", 0, [(100, -500)])
    rows = {r["sparsity"]: r for r in publish(root, tmp_path / "out", steps=100)}
    assert rows["2:4"]["fraction_of_dense"] == "" and rows["dense"]["fraction_of_dense"] == ""
