"""Joining a Ray cluster (``nmlab sweep --ray``, ``nmlab campaign``): wrong addresses fail fast in
one line, a local instance stays local whatever RAY_ADDRESS says, and a refused join names the
token setting recent Ray clusters need."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hwmodel.cli import main
from tests.conftest import repo_env
from tests.test_sweep_cli import config

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = "version: 1\nenvs: [Hopper-v5]\nagents: [dense]\nseeds: [0]\nsteps: 1000\n"


def _nmlab(*args, timeout=60):
    env = repo_env()
    env.pop("RAY_ADDRESS", None)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "hwmodel", *args], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=timeout)
    return out, time.monotonic() - t0


@contextlib.contextmanager
def _listening_head(scheme: str = ""):
    """An address where something answers TCP (a stand-in for a head node that ray.init then refuses)."""
    with socket.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen()
        yield f"{scheme}127.0.0.1:{head.getsockname()[1]}"


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ray://HOST without a port: Ray Client dialled HOST:443 (gRPC's default) for 30 s, then a warning
# and a line blaming the token.
@pytest.mark.parametrize("address", ["closed", "nosuchhost.invalid:6379", "ray://closed", "ray://nosuchhost.invalid"])
def test_sweep_at_an_address_where_nothing_answers_is_one_line_exit_2_at_once(tmp_path, address):
    address = address.replace("closed", f"127.0.0.1:{_closed_port()}")
    cfg = config(tmp_path, patterns=["dense"], bits=[8], designs=["flex_nm"])
    # Ray itself retries such an address for minutes (the timeout is what a hang meets).
    out, took = _nmlab("sweep", str(cfg), "--out", str(tmp_path / "o"), "--ray", address, "--quiet")
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert out.stderr.startswith(f"nmlab sweep: error: --ray: cannot join the Ray cluster at {address}: nothing answers")
    assert took < 30
    assert not (tmp_path / "o").exists(), "an address Ray cannot join is bad input: nothing written"


@pytest.mark.parametrize("address, endpoint", [
    ("10.0.0.1:6379", ("10.0.0.1", 6379)), ("ray://head:10001", ("head", 10001)), ("ray://head", ("head", 443)),
    ("[::1]:6379", ("::1", 6379)), ("ray://[::1]", ("::1", 443)), ("ray://[::1]:10001", ("::1", 10001)),
    ("auto", None), ("head", None), ("head:63x", None),
])
def test_the_endpoint_checked_is_where_ray_connects(address, endpoint):
    from hwmodel.raycluster import _head_endpoint

    assert _head_endpoint(address) == endpoint


def test_campaign_at_an_address_where_nothing_answers_is_one_line_exit_2_at_once(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    address = f"127.0.0.1:{_closed_port()}"
    out, took = _nmlab("campaign", str(cfg), "--out", str(tmp_path / "c"), "--ray", address)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip() == out.stderr.strip().splitlines()[0]
    assert out.stderr.startswith(f"nmlab campaign: error: --ray: cannot join the Ray cluster at {address}: nothing answers")
    assert took < 30
    assert not (tmp_path / "c").exists(), "nothing written (it left DIR and its campaign.lock)"


def test_a_refused_join_names_the_token_setting(tmp_path, monkeypatch, capsys):
    """A head that answers but refuses us (what a token-authenticated cluster does without
    RAY_AUTH_MODE=token: 20 s of retries, then only 'Failed to connect') says what to set."""
    import ray

    def refuse(*args, **kw):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kw.get('address')}")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with _listening_head() as address:
        assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", address, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nmlab sweep: error: --ray: cannot join the Ray cluster at {address} (Failed to connect")
    assert "needs RAY_AUTH_MODE=token" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("exists", [False, True])
@pytest.mark.parametrize("raised", [ConnectionError("Failed to connect to Ray cluster"),
                                    RuntimeError("Version mismatch: the cluster runs Ray 2.9.0"),
                                    ValueError("Invalid address")])
def test_a_campaign_that_cannot_join_leaves_nothing_behind(tmp_path, monkeypatch, capsys, exists, raised):
    """Only an address where nothing answers was refused before DIR and its campaign.lock were
    made: a refused token (or any other failure to join) left them behind."""
    import ray

    def refuse(*args, **kw):
        raise raised

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    out = tmp_path / "c"
    if exists:
        out.mkdir()
    with _listening_head() as address:
        assert main(["campaign", str(cfg), "--out", str(out), "--ray", address]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"nmlab campaign: error: --ray: cannot join the Ray cluster at {address} ({raised}")
    assert len(err.splitlines()) == 1 and not captured.out
    assert (list(out.iterdir()) == []) if exists else not out.exists()


def test_a_ray_client_timeout_is_one_line(tmp_path, monkeypatch, capsys):
    """Where something answers at ray://HOST:PORT but no Ray Client server does, Ray warns of the
    timeout (a UserWarning on stderr) before raising it: the error was a second line."""
    import warnings

    import ray

    def time_out(*args, **kw):
        warnings.warn("Ray Client connection timed out. Ensure that the Ray Client port ...", UserWarning)
        raise ConnectionError("ray client connection timeout")

    monkeypatch.setattr(ray, "init", time_out)
    with _listening_head("ray://") as address, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", address, "--quiet"]) == 2
    assert [str(w.message) for w in seen] == []
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nmlab sweep: error: --ray: cannot join the Ray cluster at {address} (ray client connection "
                          "timeout)") and len(err.splitlines()) == 1


def test_a_malformed_address_is_one_line_without_the_token_hint(tmp_path, capsys):
    assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", "127.0.0.1:6379x", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nmlab sweep: error: --ray: cannot join the Ray cluster at 127.0.0.1:6379x (")
    assert "RAY_AUTH_MODE" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("host", ["head..cluster", "h" * 64])
def test_a_host_name_idna_cannot_encode_is_one_line(tmp_path, capsys, host):
    """An empty label or one over 63 characters: the name lookup raised UnicodeError, a traceback."""
    assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", f"{host}:6379", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nmlab sweep: error: --ray: cannot join the Ray cluster at {host}:6379: ")
    assert "is not a host name" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_sweep_local_instance_stays_local_under_ray_address(tmp_path, monkeypatch):
    """`--ray` alone is a local instance (docs/sweeps.md), also where RAY_ADDRESS names a cluster:
    Ray would join that one and refuse the CPU count with a traceback."""
    import ray

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    cfg = config(tmp_path, patterns=["dense", "2:4"], bits=[8])
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "pool"), "--workers", "1", "--quiet"]) == 0
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "ray"), "--workers", "1", "--ray", "--quiet"]) == 0
    assert not ray.is_initialized()
    assert pd.read_parquet(tmp_path / "ray" / "points.parquet").equals(pd.read_parquet(tmp_path / "pool" / "points.parquet"))


def test_campaign_local_instance_stays_local_under_ray_address(monkeypatch):
    from rl.campaign import _start_ray

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    ray = _start_ray(None, 1)
    try:
        assert ray.cluster_resources().get("CPU") == 1
    finally:
        ray.shutdown()


def test_campaign_ray_local_is_a_local_instance_with_workers(tmp_path, monkeypatch):
    """`--ray local` starts a local instance (as `nmlab sweep --ray local`): --workers sets its CPUs
    (it was refused: 'a cluster has its own') and its runs keep the driver's niceness."""
    import rl.campaign as campaign

    started = []
    monkeypatch.setattr("hwmodel.raycluster.init_ray", lambda address, workers: started.append((address, workers)))
    monkeypatch.delenv("RAY_worker_niceness", raising=False)

    def run_campaign(cfg, out, address, workers):
        campaign._start_ray(address, workers)
        return 0

    monkeypatch.setattr(campaign, "run_campaign", run_campaign)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    assert main(["campaign", str(cfg), "--out", str(tmp_path / "c"), "--ray", "local", "--workers", "3"]) == 0
    assert started == [("local", 3)] and os.environ.get("RAY_worker_niceness") == "0"
    assert main(["campaign", str(cfg), "--out", str(tmp_path / "c"), "--ray", "auto", "--workers", "3"]) == 2


def crashing_evaluate(point: dict) -> dict:
    """The worker process dies on every 2:4 point (as when its node goes away); others evaluate."""
    from tests.test_sweep_engine import fake_evaluate

    if point["pattern"] == "2:4":
        os._exit(1)
    return fake_evaluate(point)


def test_a_sweep_whose_ray_workers_are_lost_is_one_line_and_keeps_its_parts(tmp_path):
    """Ray retries a lost worker's task; when it is lost for good (a cluster stopped mid-sweep:
    LocalRayletDiedError, here WorkerCrashedError) the sweep says so in one line, keeps the
    finished chunks and leaves no Ray instance behind."""
    import ray

    from hwmodel.errors import NmlabError
    from sweeps import api, store
    from tests.test_sweep_engine import write_config

    cfg = write_config(tmp_path, patterns=["dense", "2:4"], bits=[8], chunk_size=1)
    out = tmp_path / "o"
    with pytest.raises(NmlabError, match=r"--ray: Ray lost .*WorkerCrashedError.*the same command continues"):
        api.run(cfg, out, workers=1, use_ray=True, evaluate=crashing_evaluate, progress=False)
    assert not ray.is_initialized()
    assert 0 < len(store.list_parts(out)), "the chunks finished before the loss are kept"


class _FakeTask:
    def options(self, **kw):
        return self

    def remote(self, run, out, bits, episodes):
        return run  # the "object ref"


class _FakeRay:
    """Just what the campaign driver calls: every run is done at the first wait."""

    def __init__(self, steps):
        self.steps = steps

    def remote(self, fn):
        return _FakeTask()

    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return {"steps": self.steps, "eval_return_mean": 1.0}


def test_a_resumed_campaigns_bar_starts_at_the_steps_already_trained(tmp_path, capsys):
    """Counting a resumed run's earlier steps as trained now made the first rate and time left
    several times too high (5,857 step/s on a machine training ~1,000)."""
    import yaml

    from rl.campaign import _drive
    from rl.campaign_config import parse_config

    cfg = parse_config(yaml.safe_load("version: 1\nenvs: [Hopper-v5]\nagents: [dense, '2:4']\nseeds: [0]\nsteps: 1000\n"))
    runs = cfg.runs()
    for run, reached in zip(runs, (400, 200)):
        (tmp_path / run.name).mkdir()
        (tmp_path / run.name / "progress.csv").write_text(f"step,episode,return,length,time_s\n{reached},1,0.0,1,1.0\n")
    assert _drive(_FakeRay(cfg.steps), cfg, tmp_path, runs, progress=True) == 0
    first_bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[0]
    assert "600/2000" in first_bar, first_bar


def _no_init(monkeypatch):
    """ray.init replaced by one that records its calls and refuses (as a cluster that is down)."""
    import ray

    calls = []

    def init(*args, **kw):
        calls.append(kw.get("address"))
        raise ConnectionError(f"Failed to connect to Ray cluster at {kw.get('address')}")

    monkeypatch.setattr(ray, "init", init)
    return calls


@pytest.mark.parametrize("command", ["sweep", "campaign"])
def test_auto_where_the_cluster_is_down_is_one_line_at_once(tmp_path, monkeypatch, capsys, command):
    """`auto` is read from Ray's address file (or RAY_ADDRESS), which outlives the cluster: after the
    cluster stopped, `--ray auto` was minutes of Ray's retries and C++ log lines, never an error."""
    calls = _no_init(monkeypatch)
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    args = ([str(config(tmp_path)), "--quiet"] if command == "sweep" else [str(cfg)])
    assert main([command, *args, "--out", str(tmp_path / "o"), "--ray", "auto"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith(f"nmlab {command}: error: --ray: cannot join the Ray cluster at auto: nothing answers at "
                          f"127.0.0.1:{port}"), err
    assert "RAY_ADDRESS" in err and not captured.out
    assert calls == [], "Ray is not asked to join an address where nothing answers"
    assert not (tmp_path / "o").exists()


def test_auto_without_a_cluster_is_one_line(monkeypatch):
    import ray._private.services as services

    from hwmodel.errors import NmlabError
    from hwmodel.raycluster import init_ray

    def none_found(addr, temp_dir):
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to ...")

    calls = _no_init(monkeypatch)
    monkeypatch.setattr(services, "get_ray_address_from_environment", none_found)
    with pytest.raises(NmlabError, match=r"^--ray: cannot join the Ray cluster at auto: no Ray cluster runs on this "
                                         r"node \(`ray start --head` starts one\)"):
        init_ray("auto", 1)
    assert calls == []


@pytest.mark.parametrize("address", [":", "ray://", "head:", ":6379", "head:99999", "head:0"])
def test_a_malformed_address_is_refused_before_ray_sees_it(tmp_path, monkeypatch, capsys, address):
    """Ray logged a traceback for `:` before its error, and dialled `ray://` for 30 s."""
    calls = _no_init(monkeypatch)
    assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", address, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"nmlab sweep: error: --ray: cannot join the Ray cluster at {address} (not an address: give auto, "
                   "HOST:PORT as `ray start --head` printed it, or ray://HOST:10001)")
    assert calls == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("token_mode", [False, True])
def test_a_refused_token_is_one_line_naming_it(tmp_path, monkeypatch, capfd, token_mode):
    """A token-authenticated cluster refusing the join: Ray's core logged a line per retry (20 over
    20 s) on file descriptor 2 before the error; now the error alone, naming what to set."""
    import ray

    def refuse(*args, **kw):
        for _ in range(3):
            os.write(2, b"[2026-12-07 08:01:20,644 W 17819 17819] gcs_client.cc:210: Failed to get cluster ID from "
                        b"GCS server: Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing "
                        b"or incorrect\n")
        raise ConnectionError(f"Failed to connect to Ray cluster at {kw.get('address')}")

    monkeypatch.setattr(ray, "init", refuse)
    if token_mode:
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
    else:
        monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with _listening_head() as address:
        assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", address, "--quiet"]) == 2
    err = [line for line in capfd.readouterr().err.splitlines() if "points left out" not in line]
    assert len(err) == 1, err
    assert err[0].startswith(f"nmlab sweep: error: --ray: cannot join the Ray cluster at {address} (Failed to connect")
    assert err[0].endswith("the cluster refused the token: give the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
                           if token_mode else
                           "the cluster has token authentication: set RAY_AUTH_MODE=token here, with the cluster's "
                           "token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
    assert not (tmp_path / "o").exists()


def test_what_ray_logs_during_a_join_that_goes_wrong_otherwise_is_kept(monkeypatch, capfd):
    """Only a join's outcome is replaced by one line: an interrupt during it keeps what Ray logged."""
    import ray

    from hwmodel.raycluster import init_ray

    def interrupted(*args, **kw):
        os.write(2, b"ray: something worth seeing\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(ray, "init", interrupted)
    with _listening_head() as address, pytest.raises(KeyboardInterrupt):
        init_ray(address, 1)
    assert "ray: something worth seeing" in capfd.readouterr().err


def test_ctrl_c_of_a_campaign_says_what_is_kept_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """Ctrl-C of the driver printed only "nmlab campaign: interrupted" (the sweep names what it keeps
    and the command that continues)."""
    import rl.campaign as campaign

    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN.replace("agents: [dense]", 'agents: [dense, "2:4", "1:4"]'))
    out = tmp_path / "c"

    def interrupted(cfg, out, address, workers):
        (out / "hopper_dense_s0").mkdir(parents=True)
        (out / "hopper_dense_s0" / "checkpoint.pt").write_bytes(b"x")
        (out / "hopper_dense_s0" / "done.json").write_text("{}")
        (out / "hopper_2of4_s0").mkdir()
        (out / "hopper_2of4_s0" / "checkpoint.pt").write_bytes(b"x")
        raise KeyboardInterrupt

    monkeypatch.setattr(campaign, "run_campaign", interrupted)
    assert main(["campaign", str(cfg), "--out", str(out), "--ray", "auto"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"nmlab campaign: interrupted; 1 of 3 runs done, 1 continue from their last checkpoint and 1 from "
                   f"the start with the same command: nmlab campaign {cfg} --out {out} --ray auto")


@pytest.mark.parametrize("extra, line", [
    (["--ray", "auto", "--workers", "2"],
     "nmlab campaign: error: --workers: sets the local Ray instance's CPUs; a cluster (--ray ADDRESS) has its own"),
    (["--workers", "0"], "nmlab campaign: error: --workers: must be a positive integer, got 0"),
])
def test_campaign_workers_errors_name_the_option(tmp_path, capsys, extra, line):
    """They said `workers:`, which is no option or config key (nmlab sweep says `--workers:`)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    assert main(["campaign", str(cfg), "--out", str(tmp_path / "c"), *extra]) == 2
    assert capsys.readouterr().err.strip() == line
    assert not (tmp_path / "c").exists()


class _NoGpuRay(_FakeRay):
    """A Ray instance with CPUs only (what the driver asks of it before submitting runs)."""

    shut = False

    def cluster_resources(self):
        return {"CPU": 2.0}

    def nodes(self):
        return []  # no node to ask whether it sees DIR

    def shutdown(self):
        self.shut = True


@pytest.mark.parametrize("address", [None, "auto"])
def test_gpu_runs_on_ray_without_a_gpu_are_one_line_not_a_wait_forever(tmp_path, monkeypatch, capsys, address):
    """`train: {device: cuda}` on a cluster without GPUs: Ray held every task (infeasible) and the
    driver waited with no word until killed."""
    import rl.campaign as campaign

    fake = _NoGpuRay(1000)
    monkeypatch.setattr(campaign, "_start_ray", lambda address, workers: fake)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN + "train: {device: cuda}\n")
    out = tmp_path / "c"
    assert main(["campaign", str(cfg), "--out", str(out), *(["--ray", address] if address else [])]) == 2
    where = "Ray cluster" if address else "local Ray instance"
    assert capsys.readouterr().err.strip() == (
        f"nmlab campaign: error: train.device: runs on cuda need 0.25 GPU each (gpus_per_run), but the {where} has 0; "
        "Ray would wait for one forever (train on the CPU: leave device out)")
    assert fake.shut and not out.exists()


@pytest.mark.parametrize("key", ["learning_starts", "learning-starts"])
def test_a_campaign_whose_runs_would_not_learn_says_so(tmp_path, monkeypatch, capsys, key):
    """steps <= learning_starts: every step is random and nothing trains. `nmlab train` notes it on
    stderr, but a Ray task's stderr never reaches the driver: the campaign ran silently."""
    import rl.campaign as campaign

    monkeypatch.setattr(campaign, "_start_ray", lambda address, workers: _NoGpuRay(1000))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN + f"train: {{{key}: 1000}}\n")
    assert main(["campaign", str(cfg), "--out", str(tmp_path / "c"), "--ray", "auto"]) == 0
    out = capsys.readouterr().out
    assert ("note: 1 run(s) (hopper_dense_s0) have steps <= learning_starts (1000): every step is a random action and "
            "no gradient update runs; give train: {learning_starts: N} below steps to train") in out
    cfg.write_text(CAMPAIGN + f"train: {{{key}: 999}}\n")
    assert main(["campaign", str(cfg), "--out", str(tmp_path / "d"), "--ray", "auto"]) == 0
    assert "learning_starts" not in capsys.readouterr().out


def test_a_ray_version_mismatch_names_both_versions_in_one_line(tmp_path, monkeypatch, capsys):
    """Ray says which versions differ on the lines after 'Version mismatch: The cluster was started
    with:', and the error kept only that first line: the versions were lost."""
    import ray
    from ray._private.utils import check_version_info

    def mismatch(*args, **kw):  # what ray.init raises, from Ray's own check
        check_version_info({"ray_version": "2.9.0", "python_version": "3.10.12"}, "node 10.0.0.5")

    monkeypatch.setattr(ray, "init", mismatch)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with _listening_head() as address:
        assert main(["sweep", str(config(tmp_path)), "--out", str(tmp_path / "o"), "--ray", address, "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "points left out" not in line]
    assert len(err) == 1, err
    assert err[0].startswith(f"nmlab sweep: error: --ray: cannot join the Ray cluster at {address} (Version mismatch: "
                             "The cluster was started with: Ray: 2.9.0 Python: 3.10.12 This process on node 10.0.0.5 "
                             f"was started with: Ray: {ray.__version__} Python: "), err[0]
    assert err[0].endswith("); run nmlab where Ray and Python are the cluster's versions"), err[0]
    assert not (tmp_path / "o").exists()


def test_what_the_cluster_publishes_is_one_line_each_on_stderr(tmp_path, capfd):
    """A node whose raylet was SIGKILLed mid-sweep: the sweep went on (Ray retried the node's chunks
    on the others) but its stdout got Ray's note with the raylet's last 20 log lines twice and the
    head's note on the node marked dead, 47 lines; now one line each, once, on stderr."""
    import ray
    import ray._private.worker as ray_worker

    from hwmodel.raycluster import init_ray

    died = ("Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user or "
            "system OOM killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other "
            "termination signals. Last 20 lines of the Raylet logs:\n"
            + "    ".join(f"    [state-dump] line {i}\n" for i in range(20)))
    dead = ("The node with node id: 46182e and address: 10.0.0.5 and node name: 10.0.0.5 has been marked dead because "
            "the detector has missed too many heartbeats from it. This can happen when a \t(1) raylet crashes "
            "unexpectedly (OOM, etc.) \n\t(2) raylet has lagging heartbeats due to slow network or busy workload.")
    init_ray(None, 1)
    try:
        capfd.readouterr()
        # What Ray's listener thread calls for each error the cluster publishes (ray._private.worker).
        for note in (died, died, dead):
            ray_worker.print_to_stdstream({"lines": [note], "pid": "raylet", "is_err": False}, ignore_prefix=False)
        out, err = capfd.readouterr()
    finally:
        ray.shutdown()
    assert out == ""
    assert err.splitlines() == [
        "(raylet) Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user "
        "or system OOM killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, (3) Other termination "
        "signals. (its log: raylet.out in the node's Ray session folder)",
        "(raylet) The node with node id: 46182e and address: 10.0.0.5 and node name: 10.0.0.5 has been marked dead "
        "because the detector has missed too many heartbeats from it. This can happen when a (1) raylet crashes "
        "unexpectedly (OOM, etc.) (2) raylet has lagging heartbeats due to slow network or busy workload."]


def test_the_cluster_message_printer_passes_what_it_does_not_condense_to_ray_as_given(monkeypatch, capfd):
    """Ray's listener thread calls print_to_stdstream: a call this Ray's printer takes (another keyword, data
    that is no raylet dict) reaches it as given instead of raising in that thread, and a raylet note is cut
    at Ray's announcement of its log lines whatever their count."""
    import types

    from hwmodel.raycluster import _cluster_messages_on_stderr

    seen = []
    fake = types.ModuleType("ray._private.worker")
    fake.print_to_stdstream = lambda data, *args, **kw: seen.append((data, args, kw))
    monkeypatch.setitem(sys.modules, "ray._private.worker", fake)
    _cluster_messages_on_stderr()
    printer = fake.print_to_stdstream
    printer({"lines": ["x"], "pid": 7, "is_err": False}, ignore_prefix=True, sink="later Ray")
    printer(("raylet", ["x"]), False)
    printer({"pid": "raylet", "lines": "one string"}, ignore_prefix=False)
    printer({"pid": "raylet", "lines": ["Raylet is terminated. Termination is unexpected. Last 30 lines of the "
                                        "Raylet logs:\n    [state-dump] 1\n"]}, ignore_prefix=False)
    assert seen == [({"lines": ["x"], "pid": 7, "is_err": False}, (), {"ignore_prefix": True, "sink": "later Ray"}),
                    (("raylet", ["x"]), (False,), {}),
                    ({"pid": "raylet", "lines": "one string"}, (), {"ignore_prefix": False})]
    assert capfd.readouterr().err == ("(raylet) Raylet is terminated. Termination is unexpected. (its log: raylet.out "
                                      "in the node's Ray session folder)\n")


def test_a_campaign_that_starts_ray_under_its_lock_checks_the_cluster_as_at_first(tmp_path, monkeypatch, capsys):
    """Every run done at the first look starts no Ray; a done.json gone by the look under the lock starts it
    there, and that join is checked as the first one is (here a DIR a node does not see): one line, exit 2,
    no run submitted."""
    import rl.campaign as campaign
    from hwmodel.errors import NmlabError

    fake = _NoGpuRay(1000)
    looks = []
    monkeypatch.setattr(campaign, "_start_ray", lambda address, workers: fake)
    monkeypatch.setattr(campaign, "read_done", lambda path: looks.append(path) or ({} if len(looks) == 1 else None))

    def blind(ray, out):
        raise NmlabError(f"--out: {out} is not on storage every node of the Ray cluster sees")

    monkeypatch.setattr(campaign, "_check_out_is_shared", blind)
    monkeypatch.setattr(campaign, "_drive", lambda *a: pytest.fail("a run was submitted"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CAMPAIGN)
    out = tmp_path / "c"
    assert main(["campaign", str(cfg), "--out", str(out), "--ray", "10.0.0.1:6379"]) == 2
    assert capsys.readouterr().err.strip().endswith("is not on storage every node of the Ray cluster sees")
    assert len(looks) == 2 and fake.shut
