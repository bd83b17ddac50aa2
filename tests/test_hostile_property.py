"""Property: every loader, fed random bytes or a random mutation of a valid file, either returns
or raises one short NmlabError line. Any other exception (a traceback for the user) fails.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwmodel.errors import NmlabError

#: Examples per property; raise it for a longer hunt (NMLAB_PROPERTY_EXAMPLES=2000).
EXAMPLES = int(os.environ.get("NMLAB_PROPERTY_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Values a hostile or careless file may hold where a number or name belongs.
NASTY = st.sampled_from([
    None, True, False, 0, -1, 1.0, 1e308, -1e308, 10**30, float("nan"), float("inf"), "", "nan", "1e999", "2:4",
    "0:0", "x" * 300, [], {}, [1, 2], {"a": 1}, "unstructured:2", "dense", 2**63,
])


def _load(loader: Callable[[Path], Any], data: bytes, suffix: str) -> None:
    """Write ``data`` to a file and load it: a clean result or one NmlabError line, nothing else."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"input{suffix}"
        path.write_bytes(data)
        try:
            loader(path)
        except NmlabError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg and len(msg) <= 1000


def _mutate(data: bytes, draw) -> bytes:
    """A random byte-level damage: flips, truncation, insertion."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del buf[pos:pos + draw(st.integers(1, 64))]
        else:
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(buf)


def _check_loader(loader: Callable[[Path], Any], valid: bytes, suffix: str,
                  structured: Callable[[Any], bytes] | None = None, examples: int | None = None) -> None:
    """The valid file loads; random bytes, byte damage and (``structured(draw)``) value-level
    mutations of it give a result or one NmlabError line."""
    with tempfile.TemporaryDirectory() as d:  # the valid file must load: no error swallowed here
        path = Path(d) / f"input{suffix}"
        path.write_bytes(valid)
        loader(path)
    cfg = settings(SETTINGS, max_examples=examples or EXAMPLES)

    @cfg
    @given(st.binary(max_size=2000))
    def random_bytes(data):
        _load(loader, data, suffix)

    @cfg
    @given(st.data())
    def byte_mutations(data):
        _load(loader, _mutate(valid, data.draw), suffix)

    random_bytes()
    byte_mutations()
    if structured is not None:
        @cfg
        @given(st.data())
        def value_mutations(data):
            _load(loader, structured(data.draw), suffix)

        value_mutations()


def _replace_somewhere(obj: Any, draw) -> Any:
    """``obj`` (JSON/YAML data) with one value somewhere replaced by a NASTY one."""
    if isinstance(obj, dict) and obj and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(obj, key=str)))
        return {**obj, key: _replace_somewhere(obj[key], draw)}
    if isinstance(obj, list) and obj and draw(st.booleans()):
        i = draw(st.integers(0, len(obj) - 1))
        return obj[:i] + [_replace_somewhere(obj[i], draw)] + obj[i + 1:]
    return draw(NASTY)


# ----------------------------------------------------------------------------- workloads


def _valid_workload_bytes() -> bytes:
    from hwmodel.workload import Layer, Workload, save_workload

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    from hwmodel.sparsity import nm_mask

    mask = nm_mask(w, "2:4")
    wl = Workload([Layer("actor.fc1", "actor", 8, 4, "2:4", mask, 8, np.where(mask, w, 0).astype(np.float32),
                         np.zeros(4, np.float32)),
                   Layer("actor.fc2", "actor", 4, 2)], meta={"env": "Hopper-v5"})
    with tempfile.TemporaryDirectory() as d:
        save_workload(wl, Path(d) / "w.nmw")
        return (Path(d) / "w.nmw").read_bytes()


VALID_NMW = _valid_workload_bytes()


def _with_manifest(manifest: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(VALID_NMW)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "manifest.json":
                data = json.dumps(manifest).encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


def _load_workload(path: Path) -> None:
    from hwmodel.workload import load_workload

    load_workload(path)


def test_workload_loader():
    with zipfile.ZipFile(io.BytesIO(VALID_NMW)) as zf:
        manifest = json.loads(zf.read("manifest.json"))

    def manifests(draw) -> bytes:
        return _with_manifest(_replace_somewhere(manifest, draw))

    _check_loader(_load_workload, VALID_NMW, ".nmw", manifests)


# ----------------------------------------------------------------------------- YAML: designs and sweeps


def _design_text() -> str:
    from hwmodel.design import bundled_designs

    return bundled_designs()["edge_ws"].read_text()


def _load_design(path: Path) -> None:
    from hwmodel.design import load_design

    load_design(path)


def _load_config(path: Path) -> None:
    from sweeps.config import load_config

    load_config(path)


SWEEP_TEXT = "version: 1\npatterns: [dense, '2:4', 'unstructured:0.9']\nbits: [8, 4]\ndesigns: [edge_ws]\n" \
             "scenarios: [{scenario: inference, batch: 1}, {scenario: train_step, batch: [64, 256]}]\n" \
             "quality: null\nchunk_size: auto\n"


@pytest.mark.parametrize("loader, text", [(_load_design, None), (_load_config, SWEEP_TEXT)], ids=["design", "sweep"])
def test_yaml_loaders(loader, text):
    text = text or _design_text()

    def values(draw) -> bytes:
        return yaml.safe_dump(_replace_somewhere(yaml.safe_load(text), draw), allow_unicode=True).encode()

    _check_loader(loader, text.encode(), ".yaml", values)


# ----------------------------------------------------------------------------- CSV tables


def _load_quality(path: Path) -> None:
    from sweeps.derived import load_quality

    load_quality(path)


def _load_published(path: Path) -> None:
    from hwmodel.agents import load_published

    load_published(path)


def _check_quality_csv(path: Path) -> None:
    from hwmodel.agents import check_quality_csv

    check_quality_csv(path)


QUALITY_TEXT = ("env,method,sparsity,bits,seed,steps,episodes,return_mean,return_std\n"
                "Hopper-v5,td3,dense,32,0,1000,10,3000.5,12.0\nHopper-v5,rlx2,0.9/0.8,8,1,1000,10,2000,1\n")
PUBLISHED_TEXT = "# a comment\nmethod,env,label,fraction_of_dense,source\nrlx2,Hopper-v5,rlx2 0.9/0.8,0.95,paper\n"


@pytest.mark.parametrize("loader, text", [(_load_quality, QUALITY_TEXT), (_load_published, PUBLISHED_TEXT),
                                          (_check_quality_csv, QUALITY_TEXT)], ids=["quality", "published", "evaluate-csv"])
def test_csv_loaders(loader, text):
    def cells(draw) -> bytes:
        lines = [line.split(",") for line in text.splitlines()]
        i = draw(st.integers(0, len(lines) - 1))
        lines[i][draw(st.integers(0, len(lines[i]) - 1))] = str(draw(NASTY))
        return "\n".join(",".join(row) for row in lines).encode()

    _check_loader(loader, text.encode(), ".csv", cells)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_loader():
    import torch
    from rl.checkpoint import load_checkpoint, save_checkpoint

    net = {"fc1.weight": torch.ones(4, 3), "fc1.bias": torch.zeros(4)}
    payload = {"args": {"env": "Hopper-v5", "learning_rate": 3e-4}, "global_step": 10,
               **{k: dict(net) for k in ("actor", "qf1", "qf2", "actor_target", "qf1_target", "qf2_target")}}
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(Path(d) / "c.pt", payload)
        valid = (Path(d) / "c.pt").read_bytes()
    _check_loader(load_checkpoint, valid, ".pt", examples=max(1, EXAMPLES * 2 // 3))
