"""rl/device_campaign.py on the CPU: which runs launch starts and how many at a time, stopping
detached runs, pack limits and the splitter, pack -> unpack round trips, refusal of unsafe
archives, the manifest's device fields, publish --prebuilt, and td3's device checks."""

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from hwmodel.errors import NmlabError
from rl import campaign
from rl import device_campaign as dc
from rl.checkpoint import checkpoint_path, save_checkpoint

NETS = ("actor", "qf1", "qf2", "actor_target", "qf1_target", "qf2_target")

# A stand-in trainer: records its run, device and how many stand-ins (and CUDA ones) run at
# the same moment, sleeps, and exits. It sees the real `nmlab train` arguments.
FAKE_TRAINER = r'''
import json, os, sys, time
from pathlib import Path
argv = sys.argv[1:]
opt = lambda name: argv[argv.index(name) + 1]
marks = Path(os.environ["FAKE_MARKS"])
(marks / "running").mkdir(parents=True, exist_ok=True)
me = marks / "running" / f"{Path(opt('--out')).name}.{opt('--device')}"
me.touch()
running = [p.name for p in (marks / "running").iterdir()]
with open(marks / "log.jsonl", "a") as fh:
    fh.write(json.dumps({"name": Path(opt("--out")).name, "device": opt("--device"), "resume": "--resume" in argv,
                         "steps": int(opt("--steps")), "first": argv[0], "concurrent": len(running),
                         "concurrent_cuda": sum(n.endswith(".cuda") for n in running)}) + "\n")
try:
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0.6")))
finally:
    me.unlink()
sys.exit(1 if os.environ.get("FAKE_FAIL_CUDA") and opt("--device") == "cuda" else 0)
'''


def _fake_checkpoint(run_dir: Path, step: int, payload_bytes: int = 0, seed: int = 0) -> None:
    """A checkpoint load_checkpoint accepts (campaign.run_step reads its step); optional random payload."""
    g = torch.Generator().manual_seed(seed)
    data = {"args": {"steps": step}, "global_step": step, **{n: {} for n in NETS}}
    if payload_bytes:
        data["buffer"] = {"obs": torch.randn(payload_bytes // 4, generator=g)}
    save_checkpoint(checkpoint_path(run_dir), data)


def _fake_run(root: Path, name: str, rows: int = 50, noise: int = 0, seed: int = 0, env: str = "Hopper-v5") -> Path:
    """A run folder with args.json and CSV logs (``noise`` bytes of incompressible text in progress.csv)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "args.json").write_text(json.dumps({"env": env, "sparsity": "2:4", "method": "rnm-td3", "seed": seed,
                                             "steps": 1000, "learning_starts": 100}))
    rng = torch.Generator().manual_seed(seed)
    with open(d / "progress.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "episode", "return", "length", "time_s"])
        for i in range(rows):
            w.writerow([20 * (i + 1), i + 1, round(float(torch.rand(1, generator=rng)), 4), 20, 0.5 * i])
        if noise:
            hexes = torch.randint(0, 16, (noise,), generator=rng).tolist()
            fh.write("# " + "".join("0123456789abcdef"[h] for h in hexes) + "\n")
    with open(d / "eval.csv", "w", newline="") as fh:
        fh.write("step,return_mean,return_std,episodes,time_s\n500,12.5,1.0,2,3.0\n1000,20.0,1.0,2,6.0\n")
    return d


# ----------------------------------------------------------------------------- commands and driver
def test_train_command_is_the_campaign_command_on_a_device(tmp_path):
    spec = dc.RunSpec("Hopper-v5", "rlx2", 1, tmp_path / "hopper_rlx2_s1")
    ours = dc.train_command(spec, 200_000, True, "cuda")
    theirs = campaign.command("Hopper-v5", "rlx2", 1, spec.run_dir, 200_000, True)
    i = theirs.index("train")
    assert ours[: i - 1] == theirs[: i - 1] == ["nice", "-n", "5"]
    assert ours[i - 1 : i + 2] == [sys.executable, "-m", "hwmodel"]  # nmlab without an installed entry point
    assert ours[i + 2 :] == theirs[i:] + ["--device", "cuda"]


def test_campaign_specs_only_rejects_unknown_names(tmp_path):
    assert [s.name for s in dc.campaign_specs(tmp_path, 2, ["hopper_1of8_s1", "hopper_dense_s0"])] == \
        ["hopper_dense_s0", "hopper_1of8_s1"]  # campaign priority order, not the order given
    with pytest.raises(NmlabError, match="only: 'hopper_3of4_s0'"):
        dc.campaign_specs(tmp_path, 2, ["hopper_3of4_s0"])


def test_drive_starts_exactly_the_incomplete_runs_at_most_n_at_a_time(tmp_path, monkeypatch):
    root, marks = tmp_path / "root", tmp_path / "marks"
    steps = 1000
    (root / "hopper_dense_s0").mkdir(parents=True)
    _fake_checkpoint(root / "hopper_dense_s0", steps)  # complete: never started
    (root / "hopper_2of4_s0").mkdir()
    _fake_checkpoint(root / "hopper_2of4_s0", 300)  # partly done: resumed
    stale = _fake_run(root, "halfcheetah_dense_s0")  # logs but no checkpoint: restarted, old folder kept aside
    fake = tmp_path / "fake_trainer.py"
    fake.write_text(FAKE_TRAINER)
    monkeypatch.setenv("FAKE_MARKS", str(marks))
    monkeypatch.setenv("FAKE_SLEEP", "1.5")  # long enough for two stand-ins to overlap on a busy machine
    only = ["hopper_dense_s0", "hopper_2of4_s0", "halfcheetah_dense_s0", "halfcheetah_2of4_s0", "hopper_1of4_s0", "hopper_1of8_s0"]
    specs = dc.campaign_specs(root, 2, only)
    state = dc.drive(root, specs, steps, jobs=2, cuda_jobs=1, trainer=[sys.executable, str(fake)], poll_s=0.05,
                     log=lambda s: None)
    log = [json.loads(line) for line in (marks / "log.jsonl").read_text().splitlines()]
    started = [r["name"] for r in log]
    assert sorted(started) == sorted(only[1:])  # every incomplete run once, the complete one never
    # Started in campaign priority order (the state keeps start order; the stand-ins' own log may not).
    assert list(state["runs"]) == ["hopper_2of4_s0", "halfcheetah_dense_s0", "halfcheetah_2of4_s0", "hopper_1of4_s0", "hopper_1of8_s0"]
    assert {r["name"]: r["resume"] for r in log} == {n: n == "hopper_2of4_s0" for n in only[1:]}
    assert all(r["steps"] == steps for r in log)
    assert max(r["concurrent"] for r in log) <= 2 and max(r["concurrent_cuda"] for r in log) <= 1
    assert max(r["concurrent"] for r in log) == 2  # the slots were used
    assert {r["device"] for r in log} == {"cuda", "cpu"}
    assert set(state["runs"]) == set(only[1:]) and all(r["rc"] == 0 for r in state["runs"].values())
    assert dc.read_state(root)["runs"] == state["runs"]
    assert [p.name.split(".")[0] for p in (root / "_replaced").iterdir()] == ["halfcheetah_dense_s0"]
    assert not stale.exists() or not (stale / "progress.csv").exists()  # a fresh folder for the restart
    assert all((root / f"{n}.log").is_file() for n in only[1:])


@pytest.mark.slow
def test_launch_detaches_and_stop_ends_every_run(tmp_path, monkeypatch):
    root, marks = tmp_path / "root", tmp_path / "marks"
    fake = tmp_path / "fake_trainer.py"
    fake.write_text(FAKE_TRAINER)
    monkeypatch.setenv("FAKE_MARKS", str(marks))
    monkeypatch.setenv("FAKE_SLEEP", "120")
    only = ["hopper_dense_s0", "hopper_2of4_s0", "hopper_1of4_s0"]
    rc = dc.main(["launch", "--root", str(root), "--steps", "1000", "--jobs", "2", "--device", "cuda", "--only", *only,
                  "--poll", "0.1", "--trainer", f"{sys.executable} {fake}"])
    assert rc == 0
    try:
        assert dc.active(root)  # at once, before the driver has written its state
        deadline = time.time() + 60
        while len([r for r in dc.status_rows(root) if r["running"]]) < 2:
            assert time.time() < deadline, "two runs did not start"
            time.sleep(0.2)
        state = dc.read_state(root)
        assert dc._is_our_driver(state["driver_pid"], root) and dc.driver_pid(root) == state["driver_pid"]
        assert dc.main(["launch", "--root", str(root), "--steps", "1000", "--jobs", "2", "--only", *only]) == 2  # one driver per root
        time.sleep(0.5)
        assert sorted(r["name"] for r in dc.status_rows(root) if r["running"]) == ["hopper_2of4_s0", "hopper_dense_s0"]
        pids = [r["pid"] for r in dc.read_state(root)["runs"].values()]
        stopped = dc.stop(root, grace_s=10)
    finally:
        dc.stop(root, grace_s=1)
    assert stopped == ["hopper_2of4_s0", "hopper_dense_s0"]
    assert not dc.pid_alive(state["driver_pid"]) and not any(dc.pid_alive(p) for p in pids)
    assert not dc.active(root)
    assert {n: r["rc"] for n, r in dc.read_state(root)["runs"].items()} == {"hopper_dense_s0": "stopped", "hopper_2of4_s0": "stopped"}
    assert "hopper_1of4_s0" not in dc.read_state(root)["runs"]  # the driver was stopped before starting it


def test_a_run_failing_on_cuda_turns_cuda_off_and_runs_again_on_the_cpu(tmp_path, monkeypatch):
    root, marks = tmp_path / "root", tmp_path / "marks"
    fake = tmp_path / "fake_trainer.py"
    fake.write_text(FAKE_TRAINER)
    monkeypatch.setenv("FAKE_MARKS", str(marks))
    monkeypatch.setenv("FAKE_FAIL_CUDA", "1")
    monkeypatch.setenv("FAKE_SLEEP", "0.3")
    specs = dc.campaign_specs(root, 2, ["hopper_dense_s0", "hopper_2of4_s0", "hopper_1of4_s0", "hopper_1of8_s0"])
    state = dc.drive(root, specs, 1000, jobs=2, cuda_jobs=2, trainer=[sys.executable, str(fake)], poll_s=0.05,
                     log=lambda s: None)
    log = [(r["name"], r["device"]) for r in map(json.loads, (marks / "log.jsonl").read_text().splitlines())]
    # The first two start on cuda together, fail, and run again on the cpu like every later run.
    assert sorted(log) == sorted([("hopper_dense_s0", "cuda"), ("hopper_2of4_s0", "cuda"), ("hopper_dense_s0", "cpu"),
                                  ("hopper_2of4_s0", "cpu"), ("hopper_1of4_s0", "cpu"), ("hopper_1of8_s0", "cpu")])
    assert state["cuda_jobs"] == 0 and all(r["rc"] == 0 and r["device"] == "cpu" for r in state["runs"].values())
    assert len(state["notes"]) == 2


def test_todo_skips_complete_running_and_device_complete_runs(tmp_path):
    here, device = tmp_path / "reduced", tmp_path / "device"
    (here / "hopper_dense_s0").mkdir(parents=True)
    _fake_checkpoint(here / "hopper_dense_s0", 500)
    d = _fake_run(device, "hopper_2of4_s0")
    (d / dc.RUN_INFO_FILE).write_text(json.dumps({"complete": True, "target_steps": 500}))
    names = dc.todo(here, 500, 1, [device])
    assert "hopper_dense_s0" not in names and "hopper_2of4_s0" not in names
    assert names[0] == "halfcheetah_dense_s0" and len(names) == 10
    assert len(dc.todo(here, 600, 1, [device])) == 12  # a longer target: nothing is complete


def test_campaign_status_and_queue_skip_runs_complete_on_the_device(tmp_path, capsys, monkeypatch):
    here, device = tmp_path / "reduced", tmp_path / "device"
    d = _fake_run(device, "hopper_2of4_s0")
    (d / dc.RUN_INFO_FILE).write_text(json.dumps({"complete": True, "target_steps": 500}))
    _fake_run(device, "hopper_dense_s0")  # came back incomplete: still trained here
    assert campaign.main(["--root", str(here), "--steps", "500", "--seeds", "1", "--status", "--done-in", str(device)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["hopper_2of4_s0"].endswith(f"(complete in {device})") and "complete in" not in lines["hopper_dense_s0"]
    started = []
    monkeypatch.setattr(campaign.subprocess, "Popen", lambda cmd, **kw: started.append(cmd) or _Done())
    monkeypatch.setattr(campaign.time, "sleep", lambda s: None)
    assert campaign.main(["--root", str(here), "--steps", "500", "--seeds", "1", "--jobs", "12", "--done-in", str(device)]) == 0
    names = [Path(c[c.index("--out") + 1]).name for c in started]
    assert len(names) == 11 and "hopper_2of4_s0" not in names and "hopper_dense_s0" in names


class _Done:
    """A Popen stand-in that has already exited."""

    returncode = 0

    def poll(self):
        return 0


# ----------------------------------------------------------------------------- pack limits and splitter
def test_split_file_cuts_at_the_limit_and_joins_back(tmp_path):
    src = tmp_path / "blob"
    data = os.urandom(10_000)
    src.write_bytes(data)
    (tmp_path / "parts").mkdir()
    parts = dc.split_file(src, tmp_path / "parts", "p.", 3000)
    assert [p.name for p in parts] == ["p.000", "p.001", "p.002", "p.003"]
    assert [p.stat().st_size for p in parts] == [3000, 3000, 3000, 1000]
    assert b"".join(p.read_bytes() for p in parts) == data
    with pytest.raises(NmlabError, match="part_bytes"):
        dc.split_file(src, tmp_path / "parts", "q.", 5)  # more than 1000 parts


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pack_respects_small_limits_and_round_trips(tmp_path):
    root = tmp_path / "root"
    for i in range(3):
        _fake_run(root, f"hopper_1of{4 * (i + 1)}_s0", rows=40, noise=60_000, seed=i)
    (root / "hopper_1of4_s0.log").write_bytes(b"x" * 50_000 + b"\nTraceback: the end of the log\n")
    out = tmp_path / "out"
    man = dc.pack(root, out, steps=1000, max_files=8, part_bytes=20_000, total_bytes=200_000, commit="abc123", log=lambda s: None)
    files = sorted(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 20_000 for f in files if f.name != dc.MANIFEST_FILE)
    assert sum(f.stat().st_size for f in files) <= 200_000
    assert len(man["archive"]["parts"]) >= 3  # ~90 kB of incompressible logs in 20 kB parts
    assert [f.name for f in files] == [dc.MANIFEST_FILE] + [p["name"] for p in man["archive"]["parts"]]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no work folder left
    # Round trip: every packed file comes back byte for byte.
    dest = tmp_path / "back"
    inner = dc.unpack(files, dest, log=lambda s: None)
    for e in inner["runs"]:
        assert not e["complete"] and not e["checkpoint_packed"]
        for name in e["files"]:
            src = root / e["name"] / name if name != dc.TRAIN_LOG_FILE else root / f"{e['name']}.log"
            got = (dest / e["name"] / name).read_bytes()
            assert got == (src.read_bytes() if name != dc.TRAIN_LOG_FILE else src.read_bytes()[-dc.TRAIN_LOG_TAIL_BYTES:])
    files_of = {e["name"]: set(e["files"]) for e in inner["runs"]}
    assert files_of["hopper_1of4_s0"] == {"args.json", "progress.csv", "eval.csv", dc.TRAIN_LOG_FILE}
    assert files_of["hopper_1of8_s0"] == {"args.json", "progress.csv", "eval.csv"}
    assert (dest / "hopper_1of4_s0" / dc.TRAIN_LOG_FILE).read_bytes().endswith(b"Traceback: the end of the log\n")
    # Parts alone (no manifest) also unpack, in name order.
    inner2 = dc.unpack(list(reversed(files[1:])), tmp_path / "back2", log=lambda s: None)
    runs_only = lambda d: {k: v for k, v in _all_files(d).items() if not k.startswith("device_manifest_")}  # noqa: E731
    assert runs_only(tmp_path / "back2") == runs_only(dest) and len(runs_only(dest)) == 3 * 4 + 1  # 3 x (args, progress, eval, device_run.json) + 1 train.log
    assert inner2["runs"] == inner["runs"]
    # Unpacking again refuses to overwrite; --replace keeps the old folders aside.
    with pytest.raises(NmlabError, match="already exists"):
        dc.unpack(files, dest, log=lambda s: None)
    dc.unpack(files, dest, replace=True, log=lambda s: None)
    assert len(list((dest / "_replaced").iterdir())) == 3


def test_pack_fails_clearly_when_the_logs_cannot_fit_and_writes_nothing(tmp_path):
    root = tmp_path / "root"
    _fake_run(root, "hopper_dense_s0", noise=100_000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.txt").write_text("kept")
    with pytest.raises(NmlabError, match=r"pack: the logs and workloads of 1 runs compress to .* MiB, more than"):
        dc.pack(root, out, steps=1000, max_files=2, part_bytes=10_000, total_bytes=400_000, log=lambda s: None)
    assert [p.name for p in out.iterdir()] == ["unrelated.txt"]
    with pytest.raises(NmlabError, match="max_files"):
        dc.pack(root, out, steps=1000, max_files=1, log=lambda s: None)


def test_pack_adds_incomplete_checkpoints_furthest_first_while_they_fit(tmp_path):
    root = tmp_path / "root"
    for name, step, seed in (("hopper_1of4_s0", 600, 0), ("hopper_1of8_s0", 800, 1), ("hopper_dense_s1", 700, 2)):
        _fake_run(root, name, seed=seed)
        _fake_checkpoint(root / name, step, payload_bytes=int(1.5 * dc.MIB), seed=seed)  # random floats: ~incompressible
    out = tmp_path / "out"
    # Budget = total - a tenth for the manifest (at most 256 kB); each checkpoint needs its
    # size + COMPRESSOR_SLACK (1 MiB) on top of what is written: one fits in 3.2 MiB, two in 5.
    man = dc.pack(root, out, steps=1000, part_bytes=dc.MIB, total_bytes=int(3.2 * dc.MIB), log=lambda s: None)
    packed = {e["name"]: e["checkpoint_packed"] for e in man["runs"]}
    assert packed == {"hopper_1of8_s0": True, "hopper_dense_s1": False, "hopper_1of4_s0": False}
    assert all(f.stat().st_size <= dc.MIB for f in out.iterdir()) and len(list(out.iterdir())) <= 8
    man = dc.pack(root, out, steps=1000, part_bytes=dc.MIB, total_bytes=5 * dc.MIB, log=lambda s: None)
    assert [e["name"] for e in man["runs"] if e["checkpoint_packed"]] == ["hopper_1of8_s0", "hopper_dense_s1"]
    assert {e["name"]: e["checkpoint_step"] for e in man["runs"]} == {"hopper_1of4_s0": 600, "hopper_1of8_s0": 800, "hopper_dense_s1": 700}
    dest = tmp_path / "back"
    dc.unpack(sorted(out.iterdir()), dest, log=lambda s: None)
    assert (dest / "hopper_1of8_s0" / "checkpoint.pt").read_bytes() == (root / "hopper_1of8_s0" / "checkpoint.pt").read_bytes()
    assert campaign.run_step(dest / "hopper_dense_s1") == 700 and campaign.run_step(dest / "hopper_1of4_s0") is None
    man = dc.pack(root, out, steps=1000, checkpoints=False, log=lambda s: None)
    assert not any(e["checkpoint_packed"] for e in man["runs"])
    assert len(list(out.iterdir())) == 2  # the earlier, longer pack's parts are gone


def test_manifest_has_the_device_fields(tmp_path):
    root = tmp_path / "root"
    _fake_run(root, "hopper_dense_s0")
    man = dc.pack(root, tmp_path / "out", steps=1000, commit="0123abcd", log=lambda s: None)
    dev = man["device"]
    assert set(dev) >= {"gpu", "driver", "torch", "cuda", "cpu_model", "cpu_cores"}
    if not torch.cuda.is_available():
        assert dev["gpu"] is None and dev["gpu_count"] == 0
    assert dev["torch"] == torch.__version__ and dev["cpu_cores"] == os.cpu_count() and dev["cpu_model"]
    assert man["git_commit"] == "0123abcd" and man["format"] == dc.FORMAT_NAME and man["version"] == 1
    e = man["runs"][0]
    assert (e["name"], e["env"], e["seed"], e["logged_step"], e["checkpoint_step"], e["complete"]) == \
        ("hopper_dense_s0", "Hopper-v5", 0, 1000, None, False)
    assert man["code_sha256"]["rl/td3.py"] == hashlib.sha256((dc.repo_root() / "rl/td3.py").read_bytes()).hexdigest()
    assert "hwmodel/sparsity.py" in man["code_sha256"]
    on_disk = json.loads((tmp_path / "out" / dc.MANIFEST_FILE).read_text())
    assert on_disk == man
    joined = b"".join((tmp_path / "out" / p["name"]).read_bytes() for p in man["archive"]["parts"])
    assert hashlib.sha256(joined).hexdigest() == man["archive"]["sha256"]


def test_code_drift_names_files_that_differ_from_the_commit():
    import subprocess

    git = ["git", "-C", str(dc.repo_root())]
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    at_head = subprocess.run(git + ["show", f"{head}:rl/campaign.py"], capture_output=True).stdout
    hashes = {"rl/campaign.py": hashlib.sha256(at_head).hexdigest(), "rl/td3.py": "0" * 64}
    assert dc.code_drift({"git_commit": head, "code_sha256": hashes}) == ["rl/td3.py"]
    assert dc.code_drift({"git_commit": "f" * 40, "code_sha256": hashes}) is None  # unknown commit
    assert dc.code_drift({"git_commit": None, "code_sha256": hashes}) is None


# ----------------------------------------------------------------------------- unsafe archives
def _write_parts(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> list[Path]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    part = tmp_path / f"{dc.PART_PREFIX}000"
    part.write_bytes(buf.getvalue())
    return [part]


@pytest.mark.parametrize("name,kind,message", [
    ("../evil.txt", tarfile.REGTYPE, "'..'"),
    ("hopper_dense_s0/../../evil.txt", tarfile.REGTYPE, "'..'"),
    ("/tmp/evil.txt", tarfile.REGTYPE, "absolute"),
    ("hopper_dense_s0/args.json", tarfile.SYMTYPE, "links"),
    ("hopper_dense_s0/args.json", tarfile.LNKTYPE, "links"),
    ("hopper_dense_s0/evil.py", tarfile.REGTYPE, "not a file that pack writes"),
    ("hopper_dense_s0/tb/events", tarfile.REGTYPE, "not a file that pack writes"),
])
def test_unpack_refuses_unsafe_members(tmp_path, name, kind, message):
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    parts = _write_parts(tmp_path, [(info, b"x")])
    root = tmp_path / "root"
    with pytest.raises(NmlabError, match=message):
        dc.unpack(parts, root, log=lambda s: None)
    assert list(root.iterdir()) == []  # the staging folder is gone, nothing was restored
    assert not (tmp_path / "evil.txt").exists()


def test_unpack_checks_hashes_and_the_manifest(tmp_path):
    root = tmp_path / "root"
    _fake_run(root, "hopper_dense_s0", noise=30_000)
    out = tmp_path / "out"
    man = dc.pack(root, out, steps=1000, part_bytes=8_000, log=lambda s: None)
    files = sorted(out.iterdir())
    part = out / man["archive"]["parts"][1]["name"]
    good = part.read_bytes()
    part.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    with pytest.raises(NmlabError, match="SHA-256 differs"):
        dc.unpack(files, tmp_path / "a", log=lambda s: None)
    part.write_bytes(good)
    with pytest.raises(NmlabError, match="is missing"):
        dc.unpack([f for f in files if f != part], tmp_path / "b", log=lambda s: None)
    with pytest.raises(NmlabError, match="damaged or truncated"):  # without the manifest: the gzip stream breaks
        dc.unpack([f for f in files if f != part and f.name != dc.MANIFEST_FILE], tmp_path / "c", log=lambda s: None)
    assert dc.main(["unpack", str(tmp_path / "nope"), "--root", str(tmp_path / "d")]) == 2


# ----------------------------------------------------------------------------- real runs: products and publish
@pytest.mark.mujoco
@pytest.mark.slow
def test_pack_exports_complete_runs_and_publish_bundles_them_prebuilt(tmp_path, monkeypatch):
    from rl import publish, td3

    root = tmp_path / "root"
    small = dict(env="Hopper-v5", learning_starts=300, batch_size=32, hidden=32, eval_every=400, eval_episodes=2,
                 checkpoint_every=400, log_every=100, tensorboard=False, progress=False)
    a = root / "hopper_2of4_s0"
    td3.train(td3.Args(out=str(a), sparsity="2:4", steps=400, seed=0, **small))
    shutil.copytree(a, root / "hopper_2of4_s1")  # stays at 400 steps: incomplete, with a checkpoint
    td3.train(td3.Args(out=str(a), resume=True, steps=800), explicit={"out", "resume", "steps"})
    out = tmp_path / "out"
    man = dc.pack(root, out, steps=800, bits=(32, 4), episodes=2, log=lambda s: None)
    runs = {e["name"]: e for e in man["runs"]}
    assert runs["hopper_2of4_s0"]["complete"] and runs["hopper_2of4_s0"]["checkpoint_step"] == 800
    assert not runs["hopper_2of4_s1"]["complete"] and runs["hopper_2of4_s1"]["checkpoint_packed"]
    assert runs["hopper_2of4_s0"]["label"] == "2:4" and runs["hopper_2of4_s0"]["logged_step"] == 800
    assert set(runs["hopper_2of4_s0"]["files"]) == {"args.json", "eval.csv", "progress.csv", "sad.csv", "losses.csv",
                                                    "method.csv", dc.WORKLOAD_FILE, dc.QUALITY_FILE}
    assert "checkpoint.pt" not in runs["hopper_2of4_s0"]["files"]  # complete runs come back without it
    with open(a / dc.QUALITY_FILE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["bits"], r["steps"], r["episodes"], r["sparsity"]) for r in rows] == [("32", "800", "2", "2:4"), ("4", "800", "2", "2:4")]
    mtime = (a / dc.WORKLOAD_FILE).stat().st_mtime_ns
    twin = root / "hopper_2of4_s2"  # a second complete run: products made in two worker processes
    shutil.copytree(a, twin, ignore=shutil.ignore_patterns(dc.WORKLOAD_FILE, dc.QUALITY_FILE))
    dc.pack(root, out, steps=800, bits=(32, 4), episodes=2, workers=2, log=lambda s: None)
    assert (a / dc.WORKLOAD_FILE).stat().st_mtime_ns == mtime  # a second pack reuses the products
    assert (twin / dc.QUALITY_FILE).read_text() == (a / dc.QUALITY_FILE).read_text()  # same weights, same returns
    shutil.rmtree(twin)
    man = dc.pack(root, out, steps=800, bits=(32, 4), episodes=2, log=lambda s: None)

    dest = tmp_path / "device"
    dc.unpack(sorted(out.iterdir()), dest, log=lambda s: None)
    for name, files in ((n, e["files"]) for n, e in runs.items()):
        for f in files:
            assert (dest / name / f).read_bytes() == (root / name / f).read_bytes()
    assert dc.is_complete(dest / "hopper_2of4_s0", 800) and not dc.is_complete(dest / "hopper_2of4_s1", 800)
    from hwmodel.workload import load_workload

    wl = load_workload(dest / "hopper_2of4_s0" / dc.WORKLOAD_FILE)
    assert wl.meta["steps"] == 800 and all(layer.pattern == "2:4" for layer in wl.layers)

    # publish: the table reads the unpacked logs; --prebuilt bundles the packed workload and rows.
    table = publish.publish(dest, tmp_path / "results", 800)
    assert {r["steps_reached"] for r in table} == {"800/400"}
    data = tmp_path / "data"
    monkeypatch.setattr(publish, "data_path", lambda *parts: data.joinpath(*parts))
    assert publish.main(["--bundle", str(dest / "hopper_2of4_s0"), "--prebuilt"]) == 0
    assert (data / "workloads" / "hopper_2of4_s0.nmw").read_bytes() == (dest / "hopper_2of4_s0" / dc.WORKLOAD_FILE).read_bytes()
    with open(data / "workloads" / "quality.csv", newline="") as fh:
        assert [r["bits"] for r in csv.DictReader(fh)] == ["32", "4"]
    assert publish.main(["--bundle", str(dest / "hopper_2of4_s1"), "--prebuilt"]) == 2  # incomplete: no workload
    # An incomplete run that came back with its checkpoint resumes here on the CPU.
    td3.train(td3.Args(out=str(dest / "hopper_2of4_s1"), resume=True, steps=800, device="cpu"),
              explicit={"out", "resume", "steps", "device"})
    assert campaign.run_step(dest / "hopper_2of4_s1") == 800


# ----------------------------------------------------------------------------- td3 device checks
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_device_without_a_gpu_is_a_one_line_error(tmp_path):
    from rl import td3

    with pytest.raises(NmlabError, match=r"device: 'cuda': torch .* sees no CUDA GPU here \(pass --device cpu\)"):
        td3.validate_args(td3.Args(device="cuda"))
    with pytest.raises(NmlabError, match="device: not a torch device: 'gpu0'"):
        td3.validate_args(td3.Args(device="gpu0"))
    td3.validate_args(td3.Args(device="cpu"))
    with pytest.raises(NmlabError, match="sees no CUDA GPU"):
        dc.launch(tmp_path, 1000, 2, "cuda", None, ["hopper_dense_s0"])
    assert not list(tmp_path.iterdir())
