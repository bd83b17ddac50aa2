import importlib.util
import os
import signal
from pathlib import Path

import pytest

# Keep test processes from oversubscribing the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# A suite started in the background by a non-interactive shell (`make test &`, nohup) inherits
# SIGINT ignored, and the commands rightly keep it so; the Ctrl-C tests need the terminal's
# default. A Python handler here also resets to the default in every child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def default_sweep(tmp_path_factory):
    """The README's main job, built once per test process: the default grid (bundled workloads,
    accelerators and the default GPUs) with the real model, and its report. Read-only for tests."""
    from reports.build import build_report
    from sweeps import api

    out = tmp_path_factory.mktemp("default") / "sweep"
    api.run(None, out, workers=1, progress=False)
    build_report(out)
    return out


def hopper_dense_workload(folder: Path):
    """A dense Hopper-sized TD3 agent with weights (synthetic, seed 0) saved as
    ``folder/hopper_dense_s0.nmw``: (its path, the workload)."""
    from hwmodel.workload import save_workload, synthetic_td3_workload

    path = Path(folder) / "hopper_dense_s0.nmw"
    wl = synthetic_td3_workload(11, 3, pattern="dense", seed=0, with_weights=True)
    wl.meta.update(env="Hopper-v5", sparsity="dense")
    save_workload(wl, path)
    return path, wl


# What `nmlab gpu fit --data ... --out` writes, cut to its header.
GPU_PARAMS_TEXT = "format: nmlab-gpu-params\nversion: 1\nsets: {}\n"


def cli_refuses_file(tmp_path, capsys, argv, name: str, text: str):
    """Write ``text`` to ``tmp_path/name`` and give that file last to ``nmlab ARGV`` ("{tmp}" in
    ARGV stands for tmp_path): the run exits 2 and leaves nothing else in tmp_path. Returns (the
    file's path, the run's stderr lines)."""
    from hwmodel.cli import main

    path = tmp_path / name
    path.write_text(text)
    assert main([*(a.replace("{tmp}", str(tmp_path)) for a in argv), str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    return path, err


def cli_refuses_out_over_input(capsys, argv, target: Path, what: str, command: str | None = None):
    """``nmlab ARGV`` whose --out is its own input file ``target`` (``what`` the message calls it):
    exit 2, one stderr line ending in the refusal (the whole line "nmlab COMMAND: error: ..." where
    ``command`` is given), and ``target`` unchanged."""
    from hwmodel.cli import main

    before = target.read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    why = f"--out: {target}: is the {what} file; writing it would replace that input (give another file name)"
    if command is None:
        assert len(err) == 1 and err[0].endswith(why), err
    else:
        assert err == [f"nmlab {command}: error: {why}"]
    assert target.read_bytes() == before


def repo_env() -> dict:
    """This process's environment with this checkout first on PYTHONPATH, for a child
    ``python -m hwmodel`` (or ``-c``) that must import this tree."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
