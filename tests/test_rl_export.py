"""nmlab export / evaluate / quantization, and the train CLI, on a short real MuJoCo run."""

import csv
import dataclasses

import numpy as np
import pytest
import torch

from hwmodel.cli import main as nmlab
from hwmodel.errors import NmlabError
from hwmodel.sparsity import verify
from hwmodel.workload import TD3_NETWORKS, load_workload
from rl import td3
from rl.evaluate import QUALITY_COLUMNS, append_quality_row, evaluate_run, quantize_actor
from rl.export import load_run
from rl.quant import check_bits, fake_quant_per_channel, fake_quant_per_tensor
from rl.train_cmd import TRAIN_OPTIONS
from tests.conftest import cli_refuses_out_over_input

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]

SMALL = ["--learning-starts", "150", "--batch-size", "16", "--hidden", "32", "--eval-every", "300",
         "--eval-episodes", "2", "--mask-update-interval", "40", "--no-tensorboard", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "hc"
    rc = nmlab(["train", "--env", "HalfCheetah-v5", "--sparsity", "1:8", "--steps", "300", "--seed", "1",
                "--out", str(out), *SMALL])
    assert rc == 0
    return out


def test_every_args_field_is_a_train_option_that_reaches_it():
    # The options are built from Args' fields: check what that must give, each field's flag parsed
    # into that field with its type, a value other than the default (so a dropped or renamed
    # option, a wrong dest or type, fails here).
    import argparse

    from rl.train_cmd import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv, expected = ["train"], {}
    for field in dataclasses.fields(td3.Args):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            argv.append(flag if not field.default else "--no-" + flag[2:])
            expected[field.name] = not field.default
        elif field.type == "int":
            argv += [flag, str(field.default + 1)]
            expected[field.name] = field.default + 1
        elif field.type == "float":
            argv += [flag, repr(field.default / 2)]
            expected[field.name] = field.default / 2
        else:
            argv += [flag, "x" + field.default]
            expected[field.name] = "x" + field.default
    parsed = vars(parser.parse_args(argv))
    assert {name: parsed[name] for name in expected} == expected
    assert [name for name, *_ in TRAIN_OPTIONS] == [f.name for f in dataclasses.fields(td3.Args)]


def test_export_writes_all_six_networks_with_real_masks(run_dir, tmp_path):
    out = tmp_path / "w.nmw"
    assert nmlab(["export", str(run_dir), "--out", str(out)]) == 0
    wl = load_workload(out)
    assert wl.networks == list(TD3_NETWORKS)
    assert [l.name for l in wl.layers] == [f"{n}.fc{i}" for n in TD3_NETWORKS for i in (1, 2, 3)]
    _, nets, _ = load_run(run_dir)
    keys = {v: k for k, v in td3.NETWORK_EXPORT_NAMES.items()}
    for layer in wl.layers:
        net = layer.network
        fc = int(layer.name[-1]) - 1
        src = getattr(nets[keys[net]], f"fc{fc + 1}")
        assert layer.pattern == "1:8" and layer.weight_bits == 32
        assert (layer.in_features, layer.out_features) == (src.in_features, src.out_features)
        assert verify(layer.mask, "1:8") is None
        assert np.array_equal(layer.mask, src.mask.numpy())
        assert np.array_equal(layer.weight, (src.weight * src.mask).detach().numpy())
        assert np.array_equal(layer.bias, src.bias.detach().numpy())
        assert not np.any(layer.weight[~layer.mask])
    m = wl.meta
    assert {k: m[k] for k in ("env", "method", "sparsity", "steps", "seed", "source", "run")} == {
        "env": "HalfCheetah-v5", "method": "rnm-td3", "sparsity": "1:8", "steps": 300, "seed": 1,
        "source": "nmlab train", "run": "hc"}
    with open(run_dir / "eval.csv", newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert int(last["step"]) == 300
    assert m["eval_return_mean"] == pytest.approx(float(last["return_mean"]))
    assert m["eval_return_std"] == pytest.approx(float(last["return_std"]))


def test_evaluate_full_precision_matches_training_eval_and_csv(run_dir, tmp_path):
    row = evaluate_run(run_dir, 32, episodes=2)
    with open(run_dir / "eval.csv", newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert row["return_mean"] == pytest.approx(float(last["return_mean"]), abs=1e-3)
    table = tmp_path / "quality.csv"
    table.touch()  # an empty file is a new table (it was refused: "empty (no header line)")
    for bits in (32, 4, 32):  # the repeated 32-bit row replaces the first
        assert nmlab(["evaluate", str(run_dir), "--bits", str(bits), "--episodes", "1", "--csv", str(table)]) == 0
    with open(table, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == QUALITY_COLUMNS
    assert [(r["bits"], r["sparsity"], r["method"], r["steps"], r["episodes"]) for r in rows] == [
        ("32", "1:8", "rnm-td3", "300", "1"), ("4", "1:8", "rnm-td3", "300", "1")]


def test_quantized_actor_keeps_its_mask_and_changes_its_weights(run_dir):
    _, nets, _ = load_run(run_dir)
    before = {n: (getattr(nets["actor"], n).weight * getattr(nets["actor"], n).mask).detach().clone() for n in ("fc1", "fc2", "fc3")}
    actor = quantize_actor(nets["actor"], 3)
    for n, w0 in before.items():
        layer = getattr(actor, n)
        w = (layer.weight * layer.mask).detach()
        assert (w[w0 == 0] == 0).all()  # pruned weights stay exactly zero
        assert not torch.equal(w, w0)
        for row in w:  # 3 bits: at most 7 distinct levels per output channel
            assert len(torch.unique(row)) <= 7


def test_fake_quant_error_is_bounded_by_half_a_step():
    w = torch.randn(16, 40)
    for bits in (2, 4, 8, 16):
        q = fake_quant_per_channel(w, bits)
        step = w.abs().amax(1, keepdim=True) / (2 ** (bits - 1) - 1)
        assert ((q - w).abs() <= step / 2 + 1e-6).all()
        assert torch.equal(fake_quant_per_channel(torch.zeros(2, 3), bits), torch.zeros(2, 3))
    assert torch.equal(fake_quant_per_channel(w, 32), w)
    x = torch.randn(5, 7)
    assert len(torch.unique(fake_quant_per_tensor(x, 2))) <= 3
    assert torch.equal(fake_quant_per_tensor(x, 32), x)
    for bad in (1, 33, 0):
        with pytest.raises(NmlabError, match="bits"):
            check_bits(bad)


def test_activation_fake_quant_rounds_to_the_nearest_level_of_one_per_tensor_scale():
    """Activations: one symmetric scale per tensor, amax / (2**(bits-1) - 1), round to nearest:
    every value lands on the grid within half a step, the extreme is exact, zero stays zero."""
    torch.manual_seed(0)
    x = torch.randn(32, 17) * 3.0
    for bits in (2, 3, 4, 8, 16):
        levels = 2 ** (bits - 1) - 1
        step = x.abs().amax() / levels
        q = fake_quant_per_tensor(x, bits)
        k = q / step
        assert torch.allclose(k, k.round(), atol=1e-4) and (k.round().abs() <= levels).all()
        assert ((q - x).abs() <= step / 2 + 1e-5).all(), bits
        assert q.abs().amax() == pytest.approx(float(x.abs().amax()), rel=1e-6)
        assert torch.equal(fake_quant_per_tensor(torch.zeros(3, 4), bits), torch.zeros(3, 4))


def test_resume_of_a_finished_run_prints_its_final_return(run_dir, capsys):
    # Nothing left to train, so nothing is evaluated now; the summary line still gives the
    # run's return at its last step from eval.csv (it printed "final eval return: -").
    capsys.readouterr()
    assert nmlab(["train", "--out", str(run_dir), "--resume", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    with open(run_dir / "eval.csv") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert int(last["step"]) == 300
    assert f"final eval return: {float(last['return_mean']):.1f} +- {float(last['return_std']):.1f};" in line, line


def test_cli_errors_are_one_line(run_dir, tmp_path, capsys):
    assert nmlab(["evaluate", str(run_dir), "--bits", "1"]) == 2
    assert nmlab(["train", "--sparsity", "3:2", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert nmlab(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "y.nmw")]) == 2
    assert nmlab(["train", "--env", "Hopper-v5", "--resume", "--out", str(run_dir), "--steps", "400"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("nmlab ") and ": error: " in line for line in err)
    assert "resume: env" in err[-1]
    assert not (tmp_path / "y.nmw").exists()


@pytest.mark.parametrize("name", ["checkpoint.pt", "eval.csv"])
def test_export_out_onto_a_file_it_reads_is_refused(run_dir, name, capsys):
    # `nmlab export RUN --out RUN/checkpoint.pt` replaced the run's checkpoint with the workload
    # (exit 0); the next export, evaluate or resume found a corrupt checkpoint.
    target = run_dir / name
    capsys.readouterr()
    what = "checkpoint" if name == "checkpoint.pt" else "eval.csv"
    cli_refuses_out_over_input(capsys, ["export", str(run_dir), "--out", str(target)], target, f"run's {what}",
                               command="export")


@pytest.mark.parametrize("name", ["eval.csv", "args.json"])
def test_a_fresh_run_refuses_a_folder_holding_a_log_file_but_no_run(tmp_path, name, capsys):
    # `nmlab train --out DIR` where DIR held an eval.csv of the user's (or a run's, its checkpoint
    # and progress.csv removed): the new run appended its rows to it, headerless, and exited 0.
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("a,b\n1,2\n")
    (out / "notes.txt").write_text("mine\n")
    assert nmlab(["train", "--env", "Hopper-v5", "--steps", "300", "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nmlab train: error: out: {out} holds {name} but no run (no checkpoint.pt or progress.csv); a "
                   f"fresh run writes its own {name} there: move the file or choose a new --out"]
    assert sorted(p.name for p in out.iterdir()) == sorted([name, "notes.txt"])
    assert (out / name).read_text() == "a,b\n1,2\n"


def test_a_folder_of_runs_or_a_sweep_folder_given_as_run_says_what_it_is(run_dir, tmp_path, capsys):
    # Both said "checkpoint: no such file: DIR/checkpoint.pt".
    sweep = tmp_path / "results"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    capsys.readouterr()
    assert nmlab(["export", str(run_dir.parent), "--out", str(tmp_path / "x.nmw")]) == 2
    assert nmlab(["evaluate", str(sweep), "--bits", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(
        f"nmlab export: error: checkpoint: {run_dir.parent}: is a folder of runs (a campaign's, say), not a run folder; "
        f"give one of them (") and str(run_dir) in err[0], err
    assert err[1] == (f"nmlab evaluate: error: checkpoint: {sweep}: is a sweep folder (nmlab sweep --out), not a run "
                      "folder (give the folder nmlab train --out wrote)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_a_run_with_per_layer_patterns_has_its_own_label_in_quality_rows_workload_and_sweep(run_dir, tmp_path):
    """`--sparsity 1:8 --layer-sparsity fc1=dense` was labelled "1:8": its evaluate --csv rows replaced
    the plain 1:8 run's rows of the same env, method and seed, and the sweep took it for that agent.
    Now its rows, its export's label and the sweep's agent are "1:8 fc1=dense" (pattern mixed)."""
    from hwmodel.agents import agent_label
    from rl.publish import run_label
    from sweeps.grid import _workload_info

    mixed = tmp_path / "hc_fc1dense"
    assert nmlab(["train", "--env", "HalfCheetah-v5", "--sparsity", "1:8", "--layer-sparsity", "critic.fc1=dense,actor.fc1=dense",
                  "--steps", "300", "--seed", "1", "--out", str(mixed), *SMALL]) == 0
    table = tmp_path / "quality.csv"
    for run in (run_dir, mixed, run_dir):
        assert nmlab(["evaluate", str(run), "--bits", "8", "--episodes", "1", "--csv", str(table)]) == 0
    with open(table, newline="") as fh:
        rows = [(r["sparsity"], r["method"], r["seed"], r["bits"]) for r in csv.DictReader(fh)]
    assert rows == [("1:8", "rnm-td3", "1", "8"), ("1:8 fc1=dense", "rnm-td3", "1", "8")], rows
    wl_path = tmp_path / "mixed.nmw"
    assert nmlab(["export", str(mixed), "--out", str(wl_path)]) == 0
    meta = load_workload(wl_path).meta
    assert agent_label(meta, meta["method"], meta["sparsity"]) == "1:8 fc1=dense"
    info = _workload_info(str(wl_path))
    assert (info.pattern, info.agent) == ("mixed", "1:8 fc1=dense")
    with open(mixed / "args.json") as fh:
        import json

        assert run_label(json.load(fh)) == "1:8 fc1=dense"


def test_bundle_quality_only_adds_rows_but_no_workload(run_dir, tmp_path):
    from rl.publish import bundle

    bundle([run_dir], bits=(32, 8), episodes=1, dest=tmp_path, quality_only=True)
    assert not (tmp_path / f"{run_dir.name}.nmw").exists()
    with open(tmp_path / "quality.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["sparsity"], r["bits"], r["seed"], r["steps"]) for r in rows] == [("1:8", "32", "1", "300"), ("1:8", "8", "1", "300")]
    bundle([run_dir], bits=(8,), episodes=1, dest=tmp_path)  # the same run again: its workload, its row replaced
    assert load_workload(tmp_path / f"{run_dir.name}.nmw").meta["seed"] == 1
    with open(tmp_path / "quality.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2


def test_quality_rows_replace_same_key(tmp_path):
    path = tmp_path / "q.csv"
    row = dict(env="Hopper-v5", method="td3", sparsity="dense", bits=8, seed=0, steps=100, episodes=1, return_mean=1.0, return_std=0.0)
    append_quality_row(path, row)
    append_quality_row(path, {**row, "seed": 1})
    append_quality_row(path, {**row, "steps": 200, "return_mean": 2.0})
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["seed"], r["steps"], r["return_mean"]) for r in rows] == [("0", "200", "2.0"), ("1", "100", "1.0")]


def test_a_run_that_never_leaves_the_random_phase_says_so(tmp_path, capsys):
    # `--steps 300` under `--learning-starts 300`: every step is a random action and the actor stays
    # as initialised. The run used to end like a trained one; it now says so before it starts, and
    # its summary line counts the gradient updates (0).
    args = [a for a in SMALL]
    args[args.index("--learning-starts") + 1] = "300"
    assert nmlab(["train", "--env", "Hopper-v5", "--steps", "300", "--out", str(tmp_path / "r"), *args]) == 0
    out, err = capsys.readouterr()
    assert "--steps 300 <= --learning-starts 300" in err and "no gradient update runs" in err, err
    assert "; 0 gradient updates)" in out.strip().splitlines()[-1], out


def test_summary_line_counts_the_gradient_updates(run_dir, capsys):
    # The module's run again: 300 steps, 150 of them random, one update per step from step 150 on.
    capsys.readouterr()
    assert nmlab(["train", "--env", "HalfCheetah-v5", "--sparsity", "1:8", "--steps", "300", "--seed", "1",
                  "--out", str(run_dir.parent / "hc_again"), *SMALL]) == 0
    out, err = capsys.readouterr()
    assert "learning-starts" not in err
    assert "; 150 gradient updates)" in out.strip().splitlines()[-1], out


def test_a_qat_actor_is_quantized_once_at_the_evaluated_bits():
    """A layer trained with 8-bit QAT evaluated at 3 bits runs the 3-bit per-channel quantization of
    its effective weight, not that re-quantized at 8 bits by its own QAT (3-bit levels, thirds of
    the channel's max, are not on the 8-bit grid of 127ths)."""
    from torch import nn

    from rl.nm_layers import NMLinear

    torch.manual_seed(0)
    actor = nn.Module()
    actor.fc1, actor.fc2, actor.fc3 = NMLinear(6, 16, "2:4"), NMLinear(16, 16, "2:4"), NMLinear(16, 3, "dense")
    for name in ("fc1", "fc2", "fc3"):
        getattr(actor, name).qat_bits = 8
    want = {n: fake_quant_per_channel(getattr(actor, n).effective_weight().detach(), 3) for n in ("fc1", "fc2", "fc3")}
    quantize_actor(actor, 3)
    with torch.no_grad():
        for name, w in want.items():
            assert torch.equal(getattr(actor, name).effective_weight(), w), name


def test_replacing_an_agent_seed_drops_its_rows_of_other_steps_at_every_bits(tmp_path):
    """A run bundled in place of an earlier run of the same agent seed leaves none of the earlier
    run's rows, also at bitwidths the new run was not evaluated at; other seeds and agents stay."""
    from rl.evaluate import replace_agent_rows

    path = tmp_path / "q.csv"
    row = dict(env="Hopper-v5", method="td3", sparsity="dense", bits=32, seed=0, steps=100, episodes=1,
               return_mean=1.0, return_std=0.0)
    for r in (row, {**row, "bits": 8}, {**row, "seed": 1}, {**row, "sparsity": "2:4", "method": "rnm-td3"}):
        append_quality_row(path, r)
    replace_agent_rows(path, [{**row, "steps": 200, "return_mean": 2.0}])
    with open(path, newline="") as fh:
        got = sorted((r["sparsity"], r["seed"], r["bits"], r["steps"]) for r in csv.DictReader(fh))
    assert got == [("2:4", "0", "32", "100"), ("dense", "0", "32", "200"), ("dense", "1", "32", "100")]
