"""`nmlab campaign` on Ray (config checks, resume after a killed driver or worker, nothing
retrained) and the published final-return table (from eval CSVs)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rl.campaign import ATTEMPTS_FILE, DONE_FILE, run_state
from rl.campaign_config import parse_config, run_name
from rl.publish import publish, run_label
from tests.conftest import repo_env

ROOT = Path(__file__).resolve().parents[1]
#: Two tiny runs (small nets, 1,600 steps, a checkpoint every 200): a campaign takes seconds
#: plus Ray's start on a 2-core machine.
CONFIG = """\
version: 1
envs: [Hopper-v5]
agents: [dense, gmp]
seeds: [0]
steps: 1600
train: {learning_starts: 300, hidden: 32, batch_size: 32, buffer_size: 5000, eval_every: 400, eval_episodes: 2,
        checkpoint_every: 200, log_every: 100, tensorboard: false, prune_every: 100}
quality_bits: [32, 8]
quality_episodes: 1
"""
RUNS = ("hopper_dense_s0", "hopper_gmp_s0")


def _campaign(config, out, *extra, wait=True, timeout=600):
    cmd = [sys.executable, "-m", "hwmodel", "campaign", str(config), "--out", str(out), "--workers", "2", *extra]
    env = repo_env()
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
    # Own session, so the test can SIGKILL the driver alone (as a crash would).
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env,
                            start_new_session=True)


def _config(tmp_path, text=CONFIG):
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return path


def _evals(run_dir):
    """eval.csv without its wall-clock column: what must not depend on interruptions."""
    with open(run_dir / "eval.csv", newline="") as fh:
        return [(r["step"], r["return_mean"], r["return_std"]) for r in csv.DictReader(fh)]


def _attempts(run_dir):
    with open(run_dir / ATTEMPTS_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


def _wait_for(cond, proc, what, timeout=300):
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, f"the campaign ended before {what}: {proc.stdout.read()}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _mid_run(run_dir):
    """The run has a checkpoint and is not finished: killing now loses work after the checkpoint."""
    return (run_dir / "checkpoint.pt").is_file() and not (run_dir / DONE_FILE).exists() and (run_dir / ATTEMPTS_FILE).is_file()


def _started_until_mid_run(tmp_path, name):
    """A campaign started in the background, once run ``name`` is mid-way in its first attempt."""
    config, out = _config(tmp_path), tmp_path / "out"
    proc = _campaign(config, out, wait=False)
    try:
        _wait_for(lambda: _mid_run(out / name) and len(_attempts(out / name)) == 1, proc, f"a checkpoint of {name}")
    except BaseException:
        os.kill(proc.pid, signal.SIGKILL)
        raise
    return config, out, proc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One campaign run start to end: the reference the interrupted ones must equal."""
    tmp = tmp_path_factory.mktemp("campaign")
    out = tmp / "out"
    proc = _campaign(_config(tmp), out)
    assert proc.returncode == 0, proc.stderr
    return tmp, out, proc.stdout


# ----------------------------------------------------------------------------- config
def test_runs_names_and_agent_options(tmp_path):
    cfg = parse_config({"version": 1, "envs": ["Hopper-v5", "HalfCheetah-v5"], "agents": ["dense", "2:4", "rlx2", "gmp"],
                        "seeds": [0, 1], "steps": 1000, "train": {"learning-starts": 100}})
    runs = cfg.runs()
    assert len(runs) == 16 and [r.seed for r in runs] == [0] * 8 + [1] * 8
    assert [r.name for r in runs[:4]] == ["hopper_dense_s0", "hopper_2of4_s0", "hopper_rlx2_s0", "hopper_gmp_s0"]
    assert run_name("HalfCheetah-v5", "1:8", 1) == "halfcheetah_1of8_s1"
    by = {r.name: r.train for r in runs}
    assert by["hopper_rlx2_s0"]["actor_sparsity"] == "0.98" and by["halfcheetah_rlx2_s1"]["critic_sparsity"] == "0.85"
    assert (by["hopper_gmp_s0"]["method"], by["hopper_gmp_s0"]["sparsity"], by["hopper_gmp_s0"]["qat_bits"]) == ("gmp", "0.9", 8)
    assert all(t["learning_starts"] == 100 and t["steps"] == 1000 for t in by.values())


def test_rlx2_agent_is_the_papers_on_every_env_with_a_published_figure():
    """A campaign's rlx2 run trains at the sparsities of the paper's row for its env, so its label
    (e.g. rlx2 0.97/0.95 on Walker2d) finds the published fraction; other envs get 0.9/0.9."""
    from hwmodel.agents import normalize_label
    from rl.campaign_config import agent_options
    from rl.publish import published_fractions
    rlx2 = {env: label for (env, label) in published_fractions() if label.startswith("rlx2")}
    assert set(rlx2) >= {"Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5"}
    for env, label in rlx2.items():
        assert normalize_label(run_label(agent_options(env, "rlx2"))) == label, env
    assert run_label(agent_options("Humanoid-v5", "rlx2")) == "rlx2 0.9/0.9"


@pytest.mark.parametrize("text,key", [
    ("version: 2\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\n", "version"),
    ("version: 1\nagents: [dense]\nseeds: [0]\nsteps: 10\n", "envs"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense, 2:4]\nseeds: [0]\nsteps: 10\n", "agents[1]"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense, sparse]\nseeds: [0]\nsteps: 10\n", "agents[1]"),
    ("version: 1\nenvs: [Hopper-v9]\nagents: [dense]\nseeds: [0]\nsteps: 10\n", "envs[0]"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0, -1]\nsteps: 10\n", "seeds[1]"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 0\n", "steps"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\ntrain: {learning_rate: fast}\n", "train.learning_rate"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\ntrain: {warp: 9}\n", "train.warp"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\ntrain: {seed: 3}\n", "train.seed"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\ntrain: {tau: 2.0}\n", "train.tau"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\ntrain: {qat_bits: 8}\n", "train.qat_bits"),
    ("version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\ncolour: red\n", "colour"),
    ("version: 1\nenvs: [Hopper-v5\n", "line"),
])
def test_bad_config_is_one_line_naming_the_key_and_starts_nothing(tmp_path, text, key):
    out = tmp_path / "out"
    proc = _campaign(_config(tmp_path, text), out)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "campaign.yaml" in lines[0] and key in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize("extra,key", [
    ({"train": {"hidden": 100_000}}, "train.hidden"),            # nmlab train --hidden stops at 65,536
    ({"train": {"buffer_size": 10**12}}, "train.buffer_size"),  # the replay_transitions limit
    ({"train": {"torch_threads": 5000}}, "train.torch_threads"),
    ({"train": {"rlx2_mismatch_samples": 0}}, "train.rlx2_mismatch_samples"),
    ({"train": {"prune_start_fraction": 0.9}}, "train.prune_start_fraction"),  # must stay below the end (0.8)
    ({"train": {"prune_end_fraction": 0.1}}, "train.prune_end_fraction"),      # must stay above the start (0.2)
    ({"train": {"rlx2_buffer_drop_fraction": 2.0}}, "train.rlx2_buffer_drop_fraction"),
    ({"train": {"eval_seed_offset": -5}}, "train.eval_seed_offset"),
    ({"seeds": [2**40]}, "seeds[0]"),                           # torch and numpy seeds are 32-bit
    ({"steps": 10**13}, "steps"),
])
def test_config_values_have_the_bounds_of_nmlab_train(extra, key):
    """What `nmlab train` refuses on its command line, a campaign refuses in its config (before
    any Ray task would try to build a 100k-wide network or a 10^12-row buffer)."""
    from hwmodel.errors import NmlabError

    raw = {"version": 1, "envs": ["Hopper-v5"], "agents": ["dense"], "seeds": [0], "steps": 1000, **extra}
    with pytest.raises(NmlabError) as err:
        parse_config(raw, "c.yaml")
    assert str(err.value).startswith(f"campaign config: c.yaml: {key}: "), str(err.value)


def test_a_run_whose_checkpoint_would_outgrow_the_limit_is_refused_by_the_config(tmp_path, monkeypatch, capsys):
    """Humanoid-v5 at the default 1M buffer: `nmlab train` refuses such a run at its start (its checkpoints
    would pass NMLAB_MAX_CHECKPOINT_BYTES), so a campaign listing it started, and each Humanoid run failed
    while the others trained. The config is refused instead, before Ray or DIR, with the buffer_size that
    fits every agent of the env (rlx2's rows are the largest), by train's own estimate."""
    import re

    import rl.campaign
    from hwmodel.cli import main
    from hwmodel.errors import NmlabError
    from rl import td3

    raw = {"version": 1, "envs": ["Hopper-v5", "Humanoid-v5"], "agents": ["dense", "2:4", "rlx2"], "seeds": [0],
           "steps": 1_000_000}
    with pytest.raises(NmlabError) as err:
        parse_config(raw, "c.yaml")
    msg = str(err.value)
    assert msg.startswith("campaign config: c.yaml: envs[1]: a Humanoid-v5 checkpoint (rlx2) keeps 1,000,000 "), msg
    fits = int(re.search(r"set train: \{buffer_size: (\d+)\} or less", msg).group(1))
    assert "NMLAB_MAX_CHECKPOINT_BYTES" in msg
    # The same bound as nmlab train's for the largest run (rlx2 on Humanoid-v5, 348-d observations, 17 actions).
    rlx2 = [r for r in parse_config({**raw, "envs": ["Hopper-v5"]}).runs() if r.agent == "rlx2"][0].train
    args = {**rlx2, "env": "Humanoid-v5"}
    td3.check_checkpoint_size(td3.Args(**{**args, "buffer_size": fits}), 348, 17)
    with pytest.raises(NmlabError, match="give --buffer-size"):
        td3.check_checkpoint_size(td3.Args(**{**args, "buffer_size": fits + 1}), 348, 17)
    parse_config({**raw, "train": {"buffer_size": fits}})  # fits: accepted
    with pytest.raises(NmlabError, match=r"^campaign config: c.yaml: train.buffer_size: a Humanoid-v5 checkpoint"):
        parse_config({**raw, "train": {"buffer_size": fits + 1}}, "c.yaml")
    # A limit no buffer fits under: the networks alone are over it.
    monkeypatch.setenv("NMLAB_MAX_CHECKPOINT_BYTES", "1000")
    with pytest.raises(NmlabError, match=r"^campaign config: c.yaml: envs\[0\]: a Hopper-v5 checkpoint's networks .* "
                                         r"set a smaller train: \{hidden: ...\}"):
        parse_config(raw, "c.yaml")
    monkeypatch.delenv("NMLAB_MAX_CHECKPOINT_BYTES")
    # The command: exit 2, one line, neither Ray nor DIR touched.
    monkeypatch.setattr(rl.campaign, "_start_ray", lambda *a: pytest.fail("Ray joined"))
    cfg = tmp_path / "campaign.yaml"
    cfg.write_text("version: 1\nenvs: [Hopper-v5, Humanoid-v5]\nagents: [dense]\nseeds: [0]\nsteps: 1000000\n")
    out = tmp_path / "out"
    assert main(["campaign", str(cfg), "--out", str(out)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "envs[1]: a Humanoid-v5 checkpoint" in err_lines[0], err_lines
    assert "set train: {buffer_size: " in err_lines[0] and not out.exists()


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_an_out_that_cannot_be_a_folder_is_one_line(tmp_path, where):
    """--out naming a file (or a path under one) was a FileExistsError / NotADirectoryError traceback."""
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "sub"
    proc = _campaign(_config(tmp_path, "version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 10\n"), out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "--out" in proc.stderr, proc.stderr
    assert blocker.read_text() == "x"


def test_a_dir_another_campaign_holds_is_refused_before_ray_is_touched(tmp_path, monkeypatch, capsys):
    """A second driver on a held DIR joined (or started) Ray first, seconds and a whole local
    instance, only to report the lock after it: now one line, exit 2, and Ray never joined."""
    import fcntl

    import rl.campaign
    from hwmodel.cli import main

    joined = []
    monkeypatch.setattr(rl.campaign, "_start_ray", lambda *a: joined.append(a) or pytest.fail("Ray joined"))
    out = tmp_path / "out"
    out.mkdir()
    with open(out / rl.campaign.CAMPAIGN_LOCK, "a") as held:  # the other driver's lock
        fcntl.flock(held, fcntl.LOCK_EX)
        code = main(["campaign", str(_config(tmp_path)), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert joined == [] and code == 2, err
    # A holder that recorded nothing (not an nmlab campaign of this version) is named by the command only.
    assert err.strip() == (f"nmlab campaign: error: --out: {out} is in use by another nmlab campaign; "
                           f"wait for it to end, or use another --out"), err
    assert sorted(p.name for p in out.iterdir()) == [rl.campaign.CAMPAIGN_LOCK]  # nothing written


#: A driver that holds its DIR as `nmlab campaign` does (Ray and the runs left out) until its stdin is closed.
_DRIVER = """\
import sys
from pathlib import Path
import rl.campaign as c
from rl.campaign_config import load_config

class Ray:
    def shutdown(self): pass

def drive(ray, cfg, out, todo, progress):
    print("holding", flush=True)
    sys.stdin.read()
    return 0

c._start_ray = lambda *a: Ray()
c._drive = drive
c.run_campaign(load_config(sys.argv[1]), Path(sys.argv[2]), workers=1)
"""


def _driver(config, out):
    env = repo_env()
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(config), str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    for line in proc.stdout:  # its "campaign DIR: ..." line, then ours
        if line.strip() == "holding":
            return proc
    proc.wait()
    pytest.fail(f"the holding driver ended ({proc.returncode})")


@pytest.mark.parametrize("when", ["first look", "taking"])
def test_a_dir_a_running_campaign_holds_is_refused_naming_its_pid(tmp_path, monkeypatch, capsys, when):
    """The driver recorded nothing in campaign.lock, so a second one could not say who held DIR
    (the sweep's refusal names pid, host and start time): now it names the running driver,
    whether seen at the first look (before Ray) or at the taking (after Ray)."""
    import rl.campaign
    from hwmodel.cli import main
    from hwmodel.io import lock_holder

    out = tmp_path / "out"
    config = _config(tmp_path)
    holder = _driver(config, out)
    try:
        recorded = lock_holder(out / rl.campaign.CAMPAIGN_LOCK)
        joined = []

        class Ray:
            def shutdown(self):
                joined.append("shutdown")

        monkeypatch.setattr(rl.campaign, "_start_ray", lambda *a: joined.append("joined") or Ray())
        if when == "taking":  # the other driver took DIR just after the first look
            from hwmodel.io import FolderLock

            monkeypatch.setattr(FolderLock, "refuse_if_held", lambda self: None)
        code = main(["campaign", str(config), "--out", str(out), "--workers", "1"])
    finally:
        holder.stdin.close()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert recorded.startswith(f"nmlab campaign (pid {holder.pid} on "), recorded
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err == (f"nmlab campaign: error: --out: {out} is in use by another {recorded}; "
                   f"wait for it to end, or use another --out"), err
    assert joined == ([] if when == "first look" else ["joined", "shutdown"]), joined  # Ray only after the look
    assert sorted(p.name for p in out.iterdir()) == [rl.campaign.CAMPAIGN_LOCK]  # nothing written
    assert (out / rl.campaign.CAMPAIGN_LOCK).read_text() == ""  # the holder's record cleared when it ended


# ----------------------------------------------------------------------------- Ray campaigns
@pytest.mark.mujoco
@pytest.mark.slow
def test_campaign_trains_every_run_and_finishes_it(uninterrupted):
    tmp, out, stdout = uninterrupted
    for name in RUNS:
        run = out / name
        done = json.loads((run / DONE_FILE).read_text())
        assert done["steps"] == 1600 and _evals(run)[-1][0] == "1600"
        assert float(_evals(run)[-1][1]) == pytest.approx(done["eval_return_mean"], abs=1e-3)
        with open(run / "quality.csv", newline="") as fh:
            assert [int(r["bits"]) for r in csv.DictReader(fh)] == [32, 8]
        assert (run / "workload.nmw").stat().st_size > 0
        assert [a["event"] for a in _attempts(run)] == ["start", "trained"]  # one attempt, fresh
        assert f"done {name}" in stdout
    assert "2 runs, 0 done, 2 to train" in stdout


@pytest.mark.mujoco
@pytest.mark.slow
def test_second_invocation_trains_nothing(uninterrupted):
    tmp, out, _ = uninterrupted
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "campaign.lock"}
    proc = _campaign(tmp / "campaign.yaml", out)
    assert proc.returncode == 0 and "2 runs, 2 done, 0 to train" in proc.stdout, proc.stdout + proc.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before
    status = _campaign(tmp / "campaign.yaml", out, "--status")
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [(n, "1600/1600", "done") for n in RUNS]


def _rerun_equals_uninterrupted(config, out, ref) -> None:
    """The same command finishes the campaign stopped mid-run in ``out`` with every run's evaluations
    equal to the uninterrupted campaign's (``ref``), and the run stopped mid-way continued from its
    checkpoint (no second fresh start)."""
    rerun = _campaign(config, out)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for name in RUNS:
        assert _evals(out / name) == _evals(ref / name)
    starts = [a for a in _attempts(out / RUNS[1]) if a["event"] == "start"]
    assert starts[0]["resumed"] == "False" and all(a["resumed"] == "True" for a in starts[1:]) and len(starts) >= 2


@pytest.mark.mujoco
@pytest.mark.slow
def test_driver_sigkill_then_rerun_equals_an_uninterrupted_campaign(uninterrupted, tmp_path):
    ref = uninterrupted[1]
    config, out, proc = _started_until_mid_run(tmp_path, RUNS[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not all((out / n / DONE_FILE).exists() for n in RUNS)
    _rerun_equals_uninterrupted(config, out, ref)


@pytest.mark.mujoco
@pytest.mark.slow
def test_driver_sigterm_stops_like_ctrl_c_and_the_rerun_equals_an_uninterrupted_campaign(uninterrupted, tmp_path):
    """A scheduler's SIGTERM to the driver printed Ray's C++ "SIGTERM received" stack lines and
    exited 1: now it stops as Ctrl-C does (the one line that says what survives), with status 143,
    and the same command finishes the campaign as if it never stopped."""
    ref = uninterrupted[1]
    config, out, proc = _started_until_mid_run(tmp_path, RUNS[1])
    try:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, output
    assert "SIGTERM received" not in output and "Traceback" not in output, output
    said = [line for line in output.splitlines() if line.startswith("nmlab campaign:")]
    assert len(said) == 1 and said[0].startswith("nmlab campaign: interrupted; ") and said[0].endswith(
        f"with the same command: nmlab campaign {config} --out {out} --workers 2"), output
    _rerun_equals_uninterrupted(config, out, ref)


@pytest.mark.mujoco
@pytest.mark.slow
def test_a_killed_worker_is_retried_from_its_checkpoint(uninterrupted, tmp_path):
    ref = uninterrupted[1]
    config, out, proc = _started_until_mid_run(tmp_path, RUNS[0])
    run = out / RUNS[0]
    try:
        os.kill(int(_attempts(run)[0]["pid"]), signal.SIGKILL)  # the Ray worker training it
        stdout, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stdout
    attempts = _attempts(run)
    assert [(a["event"], a["resumed"]) for a in attempts] == [("start", "False"), ("start", "True"), ("trained", "True")]
    assert attempts[0]["pid"] != attempts[1]["pid"]
    assert 0 < int(attempts[2]["steps_trained"]) < 1600  # continued: did not train from step 0
    for name in RUNS:
        assert _evals(out / name) == _evals(ref / name)
    assert run_state(run, 1600)["state"] == "done"


def _fake_run(root, name, env, sparsity, seed, curve, **extra):
    d = root / name
    d.mkdir(parents=True)
    (d / "args.json").write_text(json.dumps({"env": env, "sparsity": sparsity, "seed": seed, "steps": 300, **extra}))
    with open(d / "eval.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "return_mean", "return_std", "episodes", "time_s"])
        for step, ret in curve:
            w.writerow([step, ret, 0, 10, 0])


def test_clearing_a_run_killed_before_its_first_checkpoint_removes_only_its_own_files(tmp_path):
    # A fresh start cleared everything in DIR/<run> but run.lock and attempts.csv: a folder of the
    # run's name holding one's own files (--out given a folder that had one) lost them all.
    from rl.campaign import _clear

    run = tmp_path / "hopper_2of4_s0"
    (run / "tb").mkdir(parents=True)
    (run / "tb" / "events.out").write_text("x")
    own = {"notes.txt": "mine\n", "agent.nmw": "w", "data/t.csv": "a,b\n"}
    for name, text in own.items():
        (run / name).parent.mkdir(exist_ok=True)
        (run / name).write_text(text)
    for name in ("progress.csv", "eval.csv", "args.json", "sad.csv", "losses.csv", "method.csv", "quality.csv",
                 "workload.nmw", "attempts.csv", "run.lock", ".args.json.123-abc.tmp"):
        (run / name).write_text("step\n")
    _clear(run)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == sorted(
        ["agent.nmw", "attempts.csv", "data", "data/t.csv", "notes.txt", "run.lock"])
    assert all((run / name).read_text() == text for name, text in own.items())


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


def test_publish_copies_every_log_of_a_run_method_csv_included(tmp_path):
    """GMP's pruning progress and RLx2's topology and buffer scalars are in method.csv; the
    published run folders hold it (docs/results/rl/README.md), so publish must copy it."""
    root = tmp_path / "runs"
    _fake_run(root, "hopper_gmp_s0", "Hopper-v5", "0.9", 0, [(100, 10)], method="gmp", qat_bits=8)
    logs = ("progress.csv", "sad.csv", "losses.csv", "method.csv")
    for name in logs:
        (root / "hopper_gmp_s0" / name).write_text(f"step,{name}\n1,2\n")
    publish(root, tmp_path / "out", steps=300)
    for name in (*logs, "eval.csv", "args.json"):
        assert (tmp_path / "out" / "hopper_gmp_s0" / name).read_bytes() == (root / "hopper_gmp_s0" / name).read_bytes()


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


def test_the_final_return_note_gives_the_runs_own_evaluation_episodes(tmp_path):
    """A campaign with train: {eval_episodes: 2} published 'mean of the last 3 evaluations (10 deterministic
    episodes each)' and a y axis '(10 episodes, deterministic)': 10 is only the default."""
    root = tmp_path / "runs"
    _fake_run(root, "swimmer_3of8_s0", "Swimmer-v5", "3:8", 0, [(100, 10), (200, 20)], method="rnm-td3")
    _fake_run(root, "swimmer_2of8_s0", "Swimmer-v5", "2:8", 0, [(100, 10), (200, 20)], method="rnm-td3")
    for name in ("swimmer_3of8_s0", "swimmer_2of8_s0"):
        ev = root / name / "eval.csv"
        ev.write_text(ev.read_text().replace(",0,10,0\n", ",0,2,0\n"))
    publish(root, tmp_path / "out", steps=200)
    note = (tmp_path / "out" / "final_returns.md").read_text()
    assert "mean of the last 3 evaluations (2 deterministic episodes each)" in note, note[:200]
    assert "10 deterministic" not in note
    from rl.publish import episodes_text, run_info

    runs = [run_info(root / n) for n in ("swimmer_3of8_s0", "swimmer_2of8_s0")]
    assert episodes_text(runs) == "2 deterministic episodes"
    ev = root / "swimmer_2of8_s0" / "eval.csv"
    ev.write_text(ev.read_text().replace(",0,2,0\n", ",0,10,0\n"))
    assert episodes_text([run_info(root / n) for n in ("swimmer_3of8_s0", "swimmer_2of8_s0")]) == \
        "2 or 10 deterministic episodes"


def test_learning_curves_give_every_pattern_its_own_colour():
    """Patterns outside dense, 2:4, 1:4, 1:8 (3:8, 2:8, 1:2: any N:M nmlab train takes) were all drawn grey,
    so a Swimmer-v5 plot of 3:8, 2:8 and 1:2 runs had three grey lines that the legend could not tell apart;
    two gmp labels (gmp 0.9 QAT8, gmp 2:8) shared purple. Within one plot every label has its own colour."""
    from rl import publish as pub

    labels = ["dense", "2:4", "3:8", "2:8", "1:2", "gmp 0.9 QAT8", "rlx2 0.9/0.9", "gmp 2:8"]
    colours = pub.curve_colours(labels)
    assert len(set(colours.values())) == len(labels), colours
    assert colours["dense"] == "black" and colours["2:4"] == "tab:blue" and colours["rlx2 0.9/0.9"] == "tab:red"
    assert colours["gmp 0.9 QAT8"] == "tab:purple"  # the bundled plots' colours stay
    many = [f"{n}:16" for n in range(1, 17)]
    assert len(set(pub.curve_colours(many).values())) == 16


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


def test_prebuilt_bundle_checks_every_quality_table_before_writing_anything(tmp_path):
    """A damaged quality.csv in the second run was a ValueError traceback after the first run's
    workload and rows (and the second's workload) were already in the bundled folder."""
    import shutil

    from hwmodel.errors import NmlabError
    from rl.publish import bundle

    header = "env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
    for name, bits in (("hopper_dense_s0", "32"), ("hopper_dense_s1", "x")):
        run = tmp_path / name
        run.mkdir()
        shutil.copyfile(ROOT / "hwmodel/data/workloads/hopper_dense_s0.nmw", run / "workload.nmw")
        (run / DONE_FILE).write_text("{}")
        (run / "quality.csv").write_text(header + f"Hopper-v5,td3,dense,{bits},0,100,1,5.0,0.0\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(NmlabError, match="hopper_dense_s1.*bits") as err:
        bundle([tmp_path / "hopper_dense_s0", tmp_path / "hopper_dense_s1"], prebuilt=True, dest=dest)
    assert "\n" not in str(err.value)
    assert list(dest.iterdir()) == []


def test_publish_without_its_root_is_one_line(tmp_path, capsys):
    from rl.publish import main

    assert main(["--root", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("publish: error: --root") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_run_state_passes_over_damaged_log_rows(tmp_path):
    """A damaged last row (a hand edit, a torn write) was a ValueError traceback from
    run_state, which ends --status and the driver that polls it while runs train."""
    run = tmp_path / "hopper_dense_s0"
    run.mkdir()
    (run / "progress.csv").write_text("step,episode,return,length,time_s\n120,1,5.0,120,0.1\nxx,2,1,1,1\n")
    (run / "eval.csv").write_text("step,return_mean,return_std,episodes,time_s\n100,7.5,0,1,0\n200,abc,0,1,0\n")
    s = run_state(run, 1000)
    assert (s["steps_reached"], s["last_eval"], s["state"]) == (120, (100, 7.5), "new")


def test_run_state_takes_the_later_of_progress_and_eval_capped_at_the_configs_steps(tmp_path):
    # An eval logged after the last training episode counts; a run logged past the config's steps
    # (steps lowered since) reads as having reached them, not beyond.
    run = tmp_path / "hopper_dense_s0"
    run.mkdir()
    (run / "progress.csv").write_text("step,episode,return,length,time_s\n120,1,5.0,120,0.1\n")
    (run / "eval.csv").write_text("step,return_mean,return_std,episodes,time_s\n200,7.5,0,1,0\n")
    assert run_state(run, 1000)["steps_reached"] == 200
    assert run_state(run, 150)["steps_reached"] == 150


def test_finished_runs_at_other_steps_are_named_not_retrained(tmp_path):
    """Raising the config's steps after a campaign finished left its runs 'done' at the new
    steps in --status and skipped them without a word; now both say at which steps they ended."""
    out = tmp_path / "c"
    for name, steps in (("hopper_dense_s0", 1600), ("hopper_gmp_s0", 800)):
        (out / name).mkdir(parents=True)
        (out / name / DONE_FILE).write_text(json.dumps({"steps": steps}))
    config = _config(tmp_path)
    assert run_state(out / "hopper_gmp_s0", 1600)["state"] == "done at 800"
    assert run_state(out / "hopper_dense_s0", 1600)["state"] == "done"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "campaign.lock"}
    proc = _campaign(config, out)
    assert proc.returncode == 0 and "2 runs, 2 done, 0 to train" in proc.stdout, proc.stdout + proc.stderr
    note = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "hopper_gmp_s0: 800" in note[0] and "hopper_dense_s0" not in note[0], proc.stdout
    assert {p: p.read_bytes() for p in before} == before
    status = _campaign(config, out, "--status").stdout.splitlines()
    assert status[2].split()[0] == "hopper_gmp_s0" and status[2].endswith("done at 800"), status


def test_bundling_a_run_replaces_every_row_of_its_seed(tmp_path):
    """A run bundled in place of an earlier one of the same seed replaced only the rows at its own
    bitwidths: a 1100-step run evaluated at 32 and 8 bits left the 200k-step run's 16- and 4-bit
    rows beside its own, so the sweep joined two different agents under one name."""
    import shutil

    from rl.publish import bundle

    header = "env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "quality.csv").write_text(header + "".join(
        f"Hopper-v5,rnm-td3,2:4,{b},{seed},200000,10,300.0,1.0\n" for b in (32, 16, 8, 4) for seed in (0, 1))
        + "Hopper-v5,td3,dense,32,0,200000,10,320.0,1.0\n")
    run = tmp_path / "hopper_2of4_s0"
    run.mkdir()
    shutil.copyfile(ROOT / "hwmodel/data/workloads/hopper_2of4_s0.nmw", run / "workload.nmw")
    (run / DONE_FILE).write_text("{}")
    (run / "quality.csv").write_text(header + "Hopper-v5,rnm-td3,2:4,32,0,1100,2,3.3,0.2\n"
                                     "Hopper-v5,rnm-td3,2:4,8,0,1100,2,3.2,0.2\n")
    bundle([run], prebuilt=True, dest=dest)
    rows = list(csv.DictReader((dest / "quality.csv").open()))
    seed0 = sorted((r["bits"], r["steps"]) for r in rows if r["sparsity"] == "2:4" and r["seed"] == "0")
    assert seed0 == [("32", "1100"), ("8", "1100")]
    assert sorted(r["bits"] for r in rows if r["sparsity"] == "2:4" and r["seed"] == "1") == ["16", "32", "4", "8"]
    assert [r["return_mean"] for r in rows if r["method"] == "td3"] == ["320.0"]
