"""Short real MuJoCo runs of TD3 / RNM-TD3: N:M everywhere, mask interval, SAD, resume, errors."""

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from hwmodel.errors import NmlabError
from rl import methods
from rl import sparsity as tsp
from rl import td3
from rl.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from rl.export import load_run
from rl.nm_layers import nm_layers

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]

# Small but real: Hopper-v5, a few hundred steps, tiny batch.
SMALL = dict(env="Hopper-v5", learning_starts=150, batch_size=16, hidden=32, eval_every=10_000,
             eval_episodes=1, checkpoint_every=250, log_every=50, tensorboard=False, progress=False)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rnm") / "run"
    summary = td3.train(td3.Args(out=str(out), sparsity="2:4", steps=550, mask_update_interval=40, seed=3, **SMALL))
    return out, summary


def test_all_six_networks_are_nm_after_many_updates(sparse_run):
    out, summary = sparse_run
    assert summary["updates"] == 400
    _, nets, _ = load_run(out)
    assert set(nets) == {"actor", "qf1", "qf2", "actor_target", "qf1_target", "qf2_target"}
    for name, net in nets.items():
        layers = nm_layers(net)
        assert len(layers) == 3
        for layer in layers:
            assert layer.sparse
            assert tsp.verify(layer.mask, "2:4") is None, name
            # Every group keeps exactly N real entries (padding of fan-in 14 and 3 is never kept).
            counts = tsp.group_counts(layer.mask, 4)
            real = tsp.group_counts(torch.ones_like(layer.mask), 4)
            assert torch.equal(counts, torch.clamp(real, max=2)), name
            w = layer.effective_weight().detach()
            assert (w[~layer.mask] == 0).all()
        if name.endswith("_target"):
            # Targets are re-projected at the mask interval, last at update 400 (the run's last):
            # mask == projection of their latent weights.
            for layer in layers:
                assert torch.equal(layer.mask, tsp.nm_mask(layer.weight, "2:4"))


def test_mask_update_interval_and_sad_are_logged(sparse_run):
    out, _ = sparse_run
    rows = _rows(out / "sad.csv")
    assert [int(r["update"]) for r in rows] == list(range(40, 401, 40))
    # Online networks: actor 11->32->32->3, two critics 14->32->32->1.
    total = 32 * 11 + 32 * 32 + 3 * 32 + 2 * (32 * 14 + 32 * 32 + 1 * 32)
    for r in rows:
        assert int(r["total"]) == total
        assert float(r["sad"]) == pytest.approx(int(r["changed"]) / total, abs=1e-8)
    assert any(int(r["changed"]) > 0 for r in rows)  # kept weights shrinking below pruned ones move it


def test_masks_change_only_at_the_interval(tmp_path):
    seen = []
    real_update = methods.update_masks  # the td3/rnm method re-projects through this name

    def spy(modules):
        modules = list(modules)
        before = [l.mask.clone() for m in modules for l in nm_layers(m)]
        result = real_update(modules)
        seen.append(result)
        assert sum(int((b != l.mask).sum()) for b, l in zip(before, [l for m in modules for l in nm_layers(m)])) == result[0]
        return result

    methods.update_masks = spy
    try:
        td3.train(td3.Args(out=str(tmp_path / "r"), sparsity="1:4", steps=260, mask_update_interval=25, **SMALL))
    finally:
        methods.update_masks = real_update
    # One call for the online networks and one for the targets at each of the 4 mask updates
    # (110 gradient updates, interval 25), none in between.
    assert len(seen) == 2 * ((260 - 150) // 25)


def test_dense_td3_and_per_layer_override(tmp_path):
    dense = td3.Args(out=str(tmp_path / "d"), sparsity="dense", steps=200, **SMALL)
    assert td3.method_name(dense) == "td3"
    td3.train(dense)
    assert _rows(tmp_path / "d" / "sad.csv") == []
    mixed = td3.Args(out=str(tmp_path / "m"), sparsity="1:8", layer_sparsity="fc1=dense,actor.fc3=dense",
                     steps=200, mask_update_interval=10, **SMALL)
    assert td3.method_name(mixed) == "rnm-td3"
    td3.train(mixed)
    _, nets, _ = load_run(tmp_path / "m")
    kinds = {(n, i): l.sparse for n, net in nets.items() for i, l in enumerate(nm_layers(net))}
    for name in nets:
        assert kinds[(name, 0)] is False
        assert kinds[(name, 1)] is True
        assert kinds[(name, 2)] is (not name.startswith("actor"))


def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    kw = dict(SMALL, sparsity="2:4", mask_update_interval=30, seed=7)
    td3.train(td3.Args(out=str(tmp_path / "a"), steps=500, **kw))
    # Interrupted mid-episode after 320 steps (checkpoint there), then resumed to 500.
    td3.train(td3.Args(out=str(tmp_path / "b"), steps=320, **kw))
    td3.train(td3.Args(out=str(tmp_path / "b"), steps=500, resume=True, **kw), explicit={"steps", "resume", "out"})
    a, b = load_checkpoint(checkpoint_path(tmp_path / "a")), load_checkpoint(checkpoint_path(tmp_path / "b"))
    assert a["global_step"] == b["global_step"] == 500
    assert a["update_step"] == b["update_step"] == 350
    for key in td3.NETWORK_EXPORT_NAMES:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    assert torch.equal(a["buffer"]["obs"], b["buffer"]["obs"])
    assert [r["return"] for r in _rows(tmp_path / "a" / "progress.csv")] == [r["return"] for r in _rows(tmp_path / "b" / "progress.csv")]
    assert _rows(tmp_path / "a" / "sad.csv") == _rows(tmp_path / "b" / "sad.csv")


def test_export_and_logs_of_a_resumed_run_are_byte_identical_to_an_uninterrupted_runs(tmp_path):
    """What docs/rl.md promises for a resumed run: its workload export (in a folder of the same
    name: the export records the name), losses.csv and sad.csv byte for byte. (Stopped here by a
    smaller --steps, which adds an eval row at 250; benchmarks/fault_recovery.py kills runs through
    the CLI and checks eval.csv and progress.csv too.)"""
    from rl.export import export_run
    kw = dict(SMALL, sparsity="2:4", mask_update_interval=30, seed=5, eval_every=200)
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    td3.train(td3.Args(out=str(a), steps=400, **kw))
    td3.train(td3.Args(out=str(b), steps=250, **kw))
    td3.train(td3.Args(out=str(b), steps=400, resume=True, **kw), explicit={"steps", "resume", "out"})
    export_run(a, tmp_path / "a.nmw", episodes=1)
    export_run(b, tmp_path / "b.nmw", episodes=1)
    assert (tmp_path / "a.nmw").read_bytes() == (tmp_path / "b.nmw").read_bytes()
    for name in ("losses.csv", "sad.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_resume_during_random_warmup_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    """Stopped at step 120 of a 200-step random-action warm-up: the actions after the resume come
    from the action space's own generator, which must be restored too (the test above resumes
    after the warm-up, where that generator is no longer drawn from)."""
    kw = dict(SMALL, sparsity="2:4", mask_update_interval=30, seed=8, learning_starts=200)
    td3.train(td3.Args(out=str(tmp_path / "a"), steps=300, **kw))
    td3.train(td3.Args(out=str(tmp_path / "b"), steps=120, **kw))
    td3.train(td3.Args(out=str(tmp_path / "b"), steps=300, resume=True, **kw), explicit={"steps", "resume", "out"})
    a, b = load_checkpoint(checkpoint_path(tmp_path / "a")), load_checkpoint(checkpoint_path(tmp_path / "b"))
    assert a["global_step"] == b["global_step"] == 300
    assert a["buffer"].keys() == b["buffer"].keys()
    for k, v in a["buffer"].items():
        assert torch.equal(v, b["buffer"][k]) if isinstance(v, torch.Tensor) else v == b["buffer"][k], k
    for key in td3.NETWORK_EXPORT_NAMES:
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)


def test_resume_rejects_other_env_or_pattern_and_damaged_checkpoints(sparse_run, tmp_path):
    out, _ = sparse_run
    run = tmp_path / "copy"
    shutil.copytree(out, run)
    with pytest.raises(NmlabError, match="resume: env"):
        td3.train(td3.Args(out=str(run), env="HalfCheetah-v5", resume=True, steps=600), explicit={"env", "resume", "out", "steps"})
    with pytest.raises(NmlabError, match="resume: sparsity"):
        td3.train(td3.Args(out=str(run), sparsity="1:4", resume=True, steps=600), explicit={"sparsity", "resume", "out", "steps"})
    with pytest.raises(NmlabError, match="resume: learning_rate"):
        td3.train(td3.Args(out=str(run), learning_rate=1e-3, resume=True), explicit={"learning_rate", "resume", "out"})
    with pytest.raises(NmlabError, match="already holds a run"):
        td3.train(td3.Args(out=str(run), steps=600))
    path = checkpoint_path(run)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NmlabError, match="corrupt or truncated") as err:
        td3.train(td3.Args(out=str(run), resume=True), explicit={"resume", "out"})
    assert "\n" not in str(err.value)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(NmlabError, match="corrupt or truncated"):
        load_checkpoint(path)
    with pytest.raises(NmlabError, match="no such run folder"):
        td3.train(td3.Args(out=str(tmp_path / "none"), resume=True), explicit={"resume", "out"})


def test_checkpoint_loads_with_weights_only(sparse_run):
    out, _ = sparse_run
    data = torch.load(checkpoint_path(out), weights_only=True)
    assert data["format"] == "nmlab-td3-checkpoint" and data["version"] == 1
    assert data["buffer"]["size"] == 550 and data["buffer"]["obs"].shape == (550, 11)


def test_bad_knobs_are_one_line_errors(tmp_path):
    with pytest.raises(NmlabError, match="sparsity"):
        td3.train(td3.Args(out=str(tmp_path / "x"), sparsity="5:4"))
    with pytest.raises(NmlabError, match="layer_sparsity"):
        td3.train(td3.Args(out=str(tmp_path / "x"), layer_sparsity="fc9=dense"))
    with pytest.raises(NmlabError, match="env"):
        td3.train(td3.Args(out=str(tmp_path / "x"), env="NoSuchEnv-v0"))
    with pytest.raises(NmlabError, match="env: 'CartPole-v1'"):
        td3.train(td3.Args(out=str(tmp_path / "x"), env="CartPole-v1"))
    with pytest.raises(NmlabError, match="batch_size"):
        td3.train(td3.Args(out=str(tmp_path / "x"), batch_size=0))
    # Per-network targets belong to rlx2/gmp: td3/rnm used to ignore them and train every layer at --sparsity.
    with pytest.raises(NmlabError, match="actor_sparsity: per-network targets are for --method rlx2 or gmp"):
        td3.validate_args(td3.Args(out=str(tmp_path / "x"), sparsity="2:4", actor_sparsity="1:8"))
    with pytest.raises(NmlabError, match="critic_sparsity"):
        td3.validate_args(td3.Args(out=str(tmp_path / "x"), critic_sparsity="0.9"))
    # A fraction without --method said only "not a sparsity pattern".
    with pytest.raises(NmlabError, match=r"sparsity: '0.9' is not a sparsity pattern .*; a fraction removed \(0.9\) "
                                         r"is for --method rlx2 or gmp$"):
        td3.validate_args(td3.Args(out=str(tmp_path / "x"), sparsity="0.9"))
    # A rejected knob or env leaves no run directory behind (nothing half-written).
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name,mutate", [
    ("update_step missing", lambda c: c.pop("update_step")),
    ("episode missing", lambda c: c.pop("episode")),
    ("global_step text", lambda c: c.__setitem__("global_step", "abc")),
    ("global_step negative", lambda c: c.__setitem__("global_step", -5)),
    ("env_state None", lambda c: c.__setitem__("env_state", None)),
    ("args.hidden text", lambda c: c["args"].__setitem__("hidden", "abc")),
    ("args.hidden negative", lambda c: c["args"].__setitem__("hidden", -3)),
    ("args.seed text", lambda c: c["args"].__setitem__("seed", "x")),
    ("args.gamma text", lambda c: c["args"].__setitem__("gamma", "x")),
])
def test_hostile_checkpoint_is_one_line_for_resume_export_and_evaluate(sparse_run, tmp_path, name, mutate):
    """A checkpoint whose counters, env state or args have the wrong type or sign (it loads with
    weights_only=True) is one NmlabError line for every reader, never a traceback."""
    from rl.evaluate import evaluate_run
    from rl.export import export_run

    out, _ = sparse_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    data = torch.load(checkpoint_path(run), weights_only=True)
    mutate(data)
    torch.save(data, checkpoint_path(run))
    readers = {"resume": lambda: td3.train(td3.Args(out=str(run), resume=True, steps=600), explicit={"resume", "out", "steps"})}
    if not name.startswith(("update_step", "episode", "env_state")):  # export and evaluate need neither
        readers["export"] = lambda: export_run(run, tmp_path / "w.nmw")
        readers["evaluate"] = lambda: evaluate_run(run, 8, episodes=1)
    # The error comes from the checkpoint's check and names what is damaged (a wrong-typed env
    # state fails inside the catch-all of the restore, which names the entry it was restoring).
    field = "env_state: does not match this run" if name.startswith("env_state") else name.split()[0].removeprefix("args.")
    for reader, call in readers.items():
        with pytest.raises(NmlabError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and "checkpoint" in msg and field in msg, (reader, msg)
    assert not (tmp_path / "w.nmw").exists()


def test_resume_with_fewer_steps_than_trained_is_refused_and_changes_nothing(sparse_run, tmp_path):
    """--steps below the checkpoint's step cannot be honoured (training does not go back): it
    used to 'train' -N steps and rewrite args.json with the smaller --steps."""
    out, _ = sparse_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(NmlabError, match=r"resume: steps: .* has trained 550 steps already; --steps must be at least that, got 300"):
        td3.train(td3.Args(out=str(run), resume=True, steps=300), explicit={"resume", "out", "steps"})
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # Equal is fine: nothing left to train.
    summary = td3.train(td3.Args(out=str(run), resume=True, steps=550, progress=False), explicit={"resume", "out", "steps", "progress"})
    assert summary["steps_this_session"] == 0



def test_a_run_stopped_before_its_first_checkpoint_is_not_sent_to_resume(tmp_path, monkeypatch):
    """An --out with logs but no checkpoint: the error must not say 'pass --resume' (which
    then fails with 'no such file')."""
    run = tmp_path / "run"

    def interrupt(*_a, **_k):  # stopped at its first evaluation, before any checkpoint
        raise KeyboardInterrupt

    monkeypatch.setattr(td3, "evaluate_policy", interrupt)
    with pytest.raises(KeyboardInterrupt):
        td3.train(td3.Args(out=str(run), steps=300, **{**SMALL, "eval_every": 100, "checkpoint_every": 10_000}))
    assert (run / "progress.csv").exists() and not checkpoint_path(run).exists()
    with pytest.raises(NmlabError, match="before its first checkpoint") as err:
        td3.train(td3.Args(out=str(run), steps=300, **SMALL))
    assert "--resume" not in str(err.value)


def test_resume_with_a_damaged_log_row_is_one_line_and_keeps_args(sparse_run, tmp_path):
    """A log row whose step is not an integer (a hand edit, a torn write) was a ValueError
    traceback from CsvLog; args.json was already rewritten with the resumed --steps."""
    out, _ = sparse_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    with open(run / "progress.csv", "a") as fh:
        fh.write("xx,1,2.0,3,4.0\n")
    args_before = (run / "args.json").read_bytes()
    with pytest.raises(NmlabError, match=r"resume: .*progress.csv: line \d+: step: not an integer") as err:
        td3.train(td3.Args(out=str(run), resume=True, steps=600, progress=False), explicit={"resume", "out", "steps", "progress"})
    assert "\n" not in str(err.value)
    assert (run / "args.json").read_bytes() == args_before


def test_ctrl_c_says_where_the_run_stopped_and_how_to_continue(tmp_path, monkeypatch, capsys):
    """Ctrl-C during `nmlab train`: one line with the step reached, the last checkpoint's step
    (the steps after it are trained again on resume) and the command that continues the run."""
    from hwmodel.cli import main

    def interrupt(*_a, **_k):  # Ctrl-C arrives during the evaluation at step 300
        raise KeyboardInterrupt

    monkeypatch.setattr(td3, "evaluate_policy", interrupt)
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--steps", "400", "--sparsity", "2:4", "--eval-every", "300",
            "--checkpoint-every", "250", "--learning-starts", "150", "--batch-size", "16", "--hidden", "32",
            "--no-tensorboard", "--no-progress"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nmlab train: interrupted at step 300 of 400; last checkpoint at step 250 "
                   f"(steps after it are trained again, with the same result); continue with: "
                   f"nmlab train --out {run} --resume"]
    assert load_checkpoint(checkpoint_path(run))["global_step"] == 250
    # Stopped before the first checkpoint: nothing to resume, so it says to start again.
    run2 = tmp_path / "run2"
    argv2 = [a if a != str(run) else str(run2) for a in argv]
    argv2[argv2.index("--checkpoint-every") + 1] = "10000"
    assert main(argv2) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nmlab train: interrupted at step 300 of 400, before the first checkpoint (step 400): "
                   f"nothing to resume; remove {run2} to start again"]
    # and the same command again refuses the folder, as the line said ("start the run again" did not work)
    assert main(argv2) == 2 and "holds a run stopped before its first checkpoint" in capsys.readouterr().err


def test_sigterm_stops_like_ctrl_c_with_one_line_and_a_resumable_run(tmp_path):
    """A scheduler's SIGTERM (Slurm, Kubernetes, timeout) ended `nmlab train` at once with status
    143 and no word: now it stops as Ctrl-C does (the same one line, the run resumable from its
    last checkpoint), with status 143; the resumed run then finishes."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.conftest import repo_env

    root = Path(__file__).resolve().parents[1]
    env = repo_env()
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "hwmodel", "train", "--out", str(run), "--steps", "100000", "--sparsity", "2:4",
            "--eval-every", "100000", "--checkpoint-every", "200", "--learning-starts", "150", "--batch-size", "16",
            "--hidden", "32", "--no-tensorboard", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=env)
    try:
        deadline = time.time() + 300
        while not checkpoint_path(run).is_file():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoint in 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    saved = load_checkpoint(checkpoint_path(run))["global_step"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nmlab train: interrupted at step "), err
    assert lines[0].endswith(f"; last checkpoint at step {saved} (steps after it are trained again, with the same "
                             f"result); continue with: nmlab train --out {run} --resume"), err
    resumed = subprocess.run([sys.executable, "-m", "hwmodel", "train", "--out", str(run), "--resume", "--steps",
                              str(saved + 100), "--no-progress"], capture_output=True, text=True, cwd=root, env=env,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(checkpoint_path(run))["global_step"] == saved + 100


def test_progress_bar_shows_one_rate_and_the_recent_return(tmp_path, capsys):
    """The bar's own steps/s is the only rate on it (a cumulative `sps=` beside it disagreed,
    e.g. 146 step/s next to sps=210), and `ret=` the mean of the last training returns."""
    td3.train(td3.Args(out=str(tmp_path / "run"), steps=1000, **{**SMALL, "progress": True}))
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "1000/1000" in bar and "step/s" in bar and "ret=" in bar and "sps=" not in bar, bar


# Knobs that were constants inside the algorithms; a run saved before them has none of these keys.
NEWER_KNOBS = ("prune_start_fraction", "prune_end_fraction", "rlx2_buffer_drop_fraction", "rlx2_mismatch_samples",
               "eval_seed_offset")


class _Crash(Exception):
    pass


@pytest.mark.parametrize("method,extra", [
    ("gmp", dict(sparsity="0.85", prune_every=50)),
    ("rlx2", dict(sparsity="0.8", rlx2_delta=20, rlx2_buffer_check_every=100, rlx2_buffer_min_size=200,
                  rlx2_buffer_threshold=0.0)),
])
def test_resume_of_a_run_saved_before_the_newer_knobs_takes_their_defaults(tmp_path, monkeypatch, method, extra):
    """Strip the newer knobs from a crashed run's checkpoint and args.json (as an older nmlab wrote
    them); the resumed run ends bit-equal to an uninterrupted one, and naming a newer knob at its
    default on resume is accepted (the old run used it), another value refused."""
    kw = dict(SMALL, method=method, steps=500, seed=4, checkpoint_every=160, eval_every=160, **extra)
    a, b = tmp_path / "a", tmp_path / "b"
    td3.train(td3.Args(out=str(a), **kw))
    cls = type(methods.make_method(td3.Args(**kw)))
    real = cls.on_env_step

    def crash_at_330(self, global_step, buffer, actor):
        if global_step == 330:
            raise _Crash
        return real(self, global_step, buffer, actor)

    monkeypatch.setattr(cls, "on_env_step", crash_at_330)
    with pytest.raises(_Crash):
        td3.train(td3.Args(out=str(b), **kw))
    monkeypatch.undo()
    path = checkpoint_path(b)
    old = load_checkpoint(path)
    assert old["global_step"] == 320
    for name in NEWER_KNOBS:
        del old["args"][name]
    save_checkpoint(path, {k: v for k, v in old.items() if k not in ("format", "version")})
    saved = json.loads((b / "args.json").read_text())
    (b / "args.json").write_text(json.dumps({k: v for k, v in saved.items() if k not in NEWER_KNOBS}))

    with pytest.raises(NmlabError, match=r"^resume: eval_seed_offset: the run in .* used 100000; a resumed run cannot change it$"):
        td3.train(td3.Args(out=str(b), resume=True, **{**kw, "eval_seed_offset": 5}), explicit={"resume", "out", "eval_seed_offset"})
    assert "eval_seed_offset" not in load_checkpoint(path)["args"]  # the refusal changed nothing
    td3.train(td3.Args(out=str(b), resume=True, **kw), explicit={"resume", "out", *NEWER_KNOBS})

    ca, cb = load_checkpoint(checkpoint_path(a)), load_checkpoint(path)
    assert ca["global_step"] == cb["global_step"] == 500
    for key in td3.NETWORK_EXPORT_NAMES:
        for name in ca[key]:
            assert torch.equal(ca[key][name], cb[key][name]), (key, name)
    assert torch.equal(ca["buffer"]["obs"], cb["buffer"]["obs"]) and ca["buffer"]["size"] == cb["buffer"]["size"]
    for log in ("eval.csv", "method.csv", "progress.csv"):
        ra, rb = _rows(a / log), _rows(b / log)
        for r in ra + rb:
            r.pop("time_s", None)
        assert ra == rb and ra, log
    defaults = td3.Args()
    resumed = json.loads((b / "args.json").read_text())
    assert {n: resumed[n] for n in NEWER_KNOBS} == {n: getattr(defaults, n) for n in NEWER_KNOBS}
    assert {n: cb["args"][n] for n in NEWER_KNOBS} == {n: getattr(defaults, n) for n in NEWER_KNOBS}


def _record_reset_seeds(monkeypatch):
    """Every ``seed=`` given to env.reset of an env td3.make_env builds, in order (None: no seed)."""
    seeds = []
    real_make = td3.make_env

    def make(env_id):
        env = real_make(env_id)
        real_reset = env.reset

        def reset(*, seed=None, options=None):
            seeds.append(seed)
            return real_reset(seed=seed, options=options)

        env.reset = reset
        return env

    monkeypatch.setattr(td3, "make_env", make)
    return seeds


def test_train_and_evaluate_reset_evaluation_episodes_at_seed_plus_eval_seed_offset(tmp_path, monkeypatch):
    from rl.evaluate import evaluate_run

    seeds = _record_reset_seeds(monkeypatch)
    run = tmp_path / "run"
    td3.train(td3.Args(out=str(run), steps=200, seed=3, eval_seed_offset=7,
                       **{**SMALL, "eval_every": 100, "eval_episodes": 2, "checkpoint_every": 200}))
    training, evals = seeds[0], [s for s in seeds[1:] if s is not None]
    assert training == 3
    assert evals == [10, 11] * (len(evals) // 2) and len(evals) >= 4  # at steps 100 and 200
    seeds.clear()
    evaluate_run(run, 32, episodes=3)
    assert seeds == [10, 11, 12]
    with pytest.raises(NmlabError, match="eval_seed_offset: must be an integer from 0"):
        td3.validate_args(td3.Args(eval_seed_offset=-1))


def test_every_update_uses_the_td3_target_and_the_actor_and_polyak_run_every_policy_frequency(tmp_path, monkeypatch):
    """The training loop calls td_target once per update (tests/test_td3_target.py checks what it
    computes) and, every ``policy_frequency`` updates only, steps the actor and moves each of the
    three target networks by Polyak averaging with weight ``tau`` on the online network."""
    targets, polyaks = [], []
    real_target, real_polyak = td3.td_target, td3.polyak_update

    def spy_target(*a, **kw):
        targets.append(1)
        return real_target(*a, **kw)

    def spy_polyak(online, target, tau, **kw):
        polyaks.append((len(targets), tau))
        return real_polyak(online, target, tau, **kw)

    monkeypatch.setattr(td3, "td_target", spy_target)
    monkeypatch.setattr(td3, "polyak_update", spy_polyak)
    args = td3.Args(out=str(tmp_path / "run"), sparsity="2:4", steps=180, seed=1, policy_frequency=3, tau=0.02,
                    mask_update_interval=1000, **{**SMALL, "checkpoint_every": 1000})
    summary = td3.train(args)
    updates = summary["updates"]
    assert updates == 30 and len(targets) == updates
    # Three target networks after each delayed actor update, at updates 3, 6, ..., 30.
    assert polyaks == [(u, 0.02) for u in range(3, updates + 1, 3) for _ in range(3)]


def test_a_checkpoint_whose_zip64_locator_names_other_disks_is_a_one_line_error(tmp_path):
    """zipfile.is_zipfile lets BadZipFile out of a ZIP64 end locator that names a disk other than
    0 (a one-byte flip found it): the loader must still say corrupt, not print a traceback."""
    net = {"fc1.weight": torch.ones(4, 3)}
    payload = {"args": {"env": "Hopper-v5"}, "global_step": 1, **{k: dict(net) for k in td3.NETWORK_EXPORT_NAMES}}
    path = tmp_path / "c.pt"
    save_checkpoint(path, payload)
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x06\x07")  # the ZIP64 end-of-central-directory locator torch.save writes
    assert at > 0
    data[at + 4] = 1  # "disk with the ZIP64 end record": 1 instead of 0
    path.write_bytes(bytes(data))
    with pytest.raises(NmlabError, match="corrupt or truncated") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("env_id", ["Ant-v5", "Humanoid-v5"])
def test_restored_env_state_continues_the_episode_bit_for_bit(env_id):
    """Ant-v5 and Humanoid-v5 read body positions (xpos, xipos) before they step: these are not MuJoCo
    integration state, so a resumed run took them from the reset inside set_env_state and the first
    transition after every resume had a wrong forward reward (22.6 off on Ant-v5 with a 32-unit run)."""
    import gymnasium as gym

    live, fresh = gym.make(env_id), gym.make(env_id)
    live.reset(seed=3)
    live.action_space.seed(3)
    for _ in range(20):
        live.step(live.action_space.sample())
    state = td3.get_env_state(live)
    assert td3.set_env_state(fresh, state, seed=99)
    for _ in range(3):
        action = live.action_space.sample()
        a, b = live.step(action), fresh.step(action)
        assert a[1] == b[1] and np.array_equal(a[0], b[0]), (a[1], b[1])
    live.close()
    fresh.close()


def test_a_run_whose_checkpoint_would_outgrow_the_limit_is_refused_before_it_starts(tmp_path, monkeypatch):
    """Humanoid-v5 at the default 1M buffer writes 2.9 GB checkpoints, over the 1 GiB limit that resume,
    export and evaluate read them under: the run trained for hours, then `nmlab export` refused its
    checkpoint. The same refusal at a limit scaled down to a 300-step run: one line naming buffer_size
    and the largest buffer that fits, nothing written; that buffer trains."""
    nets, row = td3.checkpoint_bytes_at_least(td3.Args(env="Humanoid-v5", hidden=32), 348, 17)
    assert row == 4 * (2 * 348 + 17 + 2) + 1
    monkeypatch.setenv("NMLAB_MAX_CHECKPOINT_BYTES", str(nets + td3.CHECKPOINT_ALLOWANCE + 200 * row))
    args = td3.Args(**{**SMALL, "env": "Humanoid-v5", "out": str(tmp_path / "h"), "steps": 300})
    with pytest.raises(NmlabError, match=r"^buffer_size: .*Humanoid-v5.* give --buffer-size 200 or less") as exc:
        td3.train(args)
    assert "\n" not in str(exc.value) and not (tmp_path / "h").exists()
    td3.train(dataclasses.replace(args, buffer_size=200))
    assert load_checkpoint(checkpoint_path(tmp_path / "h"))["buffer"]["filled"] == 200  # readable under the limit


def test_a_run_whose_networks_alone_outgrow_the_checkpoint_limit_names_hidden(tmp_path):
    """Networks too large for any buffer (Hopper-v5 at --hidden 8192: 3.6 GB of weights, masks and Adam
    moments) were refused naming buffer_size with `give --buffer-size 0 or less`, a value train refuses:
    the line now names hidden, the option that can bring the run under the limit."""
    args = td3.Args(**{**SMALL, "hidden": 8192, "out": str(tmp_path / "h"), "steps": 300})
    with pytest.raises(NmlabError, match=r"^hidden: .*Hopper-v5.*--hidden 8192.* give a smaller --hidden") as exc:
        td3.train(args)
    assert "\n" not in str(exc.value) and "--buffer-size" not in str(exc.value) and not (tmp_path / "h").exists()


def test_the_checkpoint_size_refusal_gives_values_the_option_and_the_variable_accept(tmp_path, monkeypatch):
    """The refusal printed `give --buffer-size 371,923 or less, or set NMLAB_MAX_CHECKPOINT_BYTES to
    2,870,667,376 or more`: typed as given, both were refused (`--buffer-size: not an integer: '371,923'`,
    `must be a positive integer`). The values to type are now plain integers, and both are taken."""
    import re

    from hwmodel.limits import limit
    from rl.train_cmd import TRAIN_OPTIONS

    nets, row = td3.checkpoint_bytes_at_least(td3.Args(env="Humanoid-v5", hidden=32), 348, 17)
    monkeypatch.setenv("NMLAB_MAX_CHECKPOINT_BYTES", str(nets + td3.CHECKPOINT_ALLOWANCE + 1234 * row))
    args = td3.Args(**{**SMALL, "env": "Humanoid-v5", "out": str(tmp_path / "h"), "steps": 5000})
    with pytest.raises(NmlabError) as exc:
        td3.train(args)
    got = re.search(r"give --buffer-size (\S+) or less, or set NMLAB_MAX_CHECKPOINT_BYTES to (\S+) or more ",
                    str(exc.value))
    assert got, str(exc.value)
    buffer_type = next(t for name, t, _, _ in TRAIN_OPTIONS if name == "buffer_size")
    assert buffer_type(got[1]) == 1234
    monkeypatch.setenv("NMLAB_MAX_CHECKPOINT_BYTES", got[2])
    assert limit("checkpoint_bytes") == nets + td3.CHECKPOINT_ALLOWANCE + 5000 * row
    td3.check_checkpoint_size(args, 348, 17)  # under the limit as given: no refusal
