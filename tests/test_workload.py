"""Workload format: round trip, and a one-line error naming layer and field for every bad input."""

import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from hwmodel import Layer, Workload, load_workload, nm_mask, save_workload
from hwmodel.errors import NmlabError


def make_workload(with_weights=True):
    rng = np.random.default_rng(0)
    layers = []
    for net, shapes, pattern in [
        ("actor", [(11, 256), (256, 256), (256, 3)], "2:4"),
        ("critic1", [(14, 256), (256, 256), (256, 1)], "1:8"),
    ]:
        for i, (fan_in, fan_out) in enumerate(shapes):
            w = rng.standard_normal((fan_out, fan_in)).astype(np.float32)
            mask = nm_mask(w, pattern)
            layers.append(
                Layer(
                    name=f"{net}.fc{i}", network=net, in_features=fan_in, out_features=fan_out,
                    pattern=pattern, mask=mask, weight_bits=8,
                    weight=np.where(mask, w, 0).astype(np.float32) if with_weights else None,
                    bias=rng.standard_normal(fan_out).astype(np.float32) if with_weights else None,
                )
            )
    layers.append(Layer(name="extra.dense", network="extra", in_features=5, out_features=7))
    return Workload(layers=layers, meta={"env": "Hopper-v5", "steps": 1000})


def test_round_trip(tmp_path):
    wl = make_workload()
    path = tmp_path / "w.nmw"
    save_workload(wl, path)
    back = load_workload(path)
    assert back.meta == wl.meta
    assert back.networks == ["actor", "critic1", "extra"]
    assert len(back.layers) == len(wl.layers)
    for a, b in zip(wl.layers, back.layers):
        assert (a.name, a.network, a.in_features, a.out_features, a.pattern, a.weight_bits) == (
            b.name, b.network, b.in_features, b.out_features, b.pattern, b.weight_bits)
        if a.mask is None:
            assert b.mask is None
        else:
            assert b.mask.dtype == bool and b.mask.shape == (a.out_features, a.in_features)
            np.testing.assert_array_equal(a.mask, b.mask)
        for key in ("weight", "bias"):
            if getattr(a, key) is not None:
                np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert back.layers[0].nnz == wl.layers[0].mask.sum()


def test_round_trip_without_weights(tmp_path):
    save_workload(make_workload(with_weights=False), tmp_path / "w.nmw")
    assert all(layer.weight is None for layer in load_workload(tmp_path / "w.nmw").layers)


def _rewrite(src, dst, edit_manifest=None, drop=None, replace=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "manifest.json" and edit_manifest:
                manifest = json.loads(data)
                edit_manifest(manifest)
                data = json.dumps(manifest).encode()
            if drop and item.filename == drop:
                continue
            if replace and item.filename in replace:
                data = replace[item.filename]
            zout.writestr(item.filename, data)


def _set(path_keys, value):
    def edit(manifest):
        target = manifest
        for k in path_keys[:-1]:
            target = target[k]
        target[path_keys[-1]] = value
    return edit


def _violating_mask_bytes(row=3, cols=slice(4, 8)):
    """actor.fc0's [256, 11] 2:4 mask with ``mask[row, cols]`` kept (default: row 3, group 1 keeps 4 of 4)."""
    mask = np.zeros((256, 11), dtype=bool)
    mask[row, cols] = True
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.packbits(mask, axis=None))
    return buf.getvalue()


def _mask_bytes_as(dtype, shape=None):
    """actor.fc0's real mask, packed, stored with another dtype or shape (same element count)."""
    import io
    packed = np.packbits(make_workload().layers[0].mask, axis=None).astype(dtype)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, packed.reshape(shape) if shape else packed)
    return buf.getvalue()


BAD = {
    "unknown version": (dict(edit_manifest=_set(["version"], 99)), "version"),
    "wrong format": (dict(edit_manifest=_set(["format"], "other")), "format"),
    "mask shape": (dict(edit_manifest=_set(["layers", 0, "in_features"], 12)), "'actor.fc0': mask"),
    "bad pattern": (dict(edit_manifest=_set(["layers", 1, "pattern"], "3:2")), "'actor.fc1': pattern"),
    "negative features": (dict(edit_manifest=_set(["layers", 2, "out_features"], -3)), "'actor.fc2': out_features"),
    "zero features": (dict(edit_manifest=_set(["layers", 6, "in_features"], 0)), "'extra.dense': in_features: must be a positive"),
    "bool features": (dict(edit_manifest=_set(["layers", 2, "out_features"], True)), "'actor.fc2': out_features"),
    "bad bits": (dict(edit_manifest=_set(["layers", 0, "weight_bits"], 0)), "'actor.fc0': weight_bits"),
    "unknown field": (dict(edit_manifest=_set(["layers", 0, "colour"], "red")), "'actor.fc0': colour"),
    "missing mask array": (dict(drop="layers/0/mask.npy"), "'actor.fc0': mask"),
    "missing manifest": (dict(drop="manifest.json"), "manifest.json"),
    "mask violates pattern": (dict(replace={"layers/0/mask.npy": _violating_mask_bytes()}), "'actor.fc0': mask: row 3 group 1"),
    # One more than N in one group (3 of 4 under 2:4): a check off by one (> N + 1) lets it through.
    "mask keeps N+1 in a group": (dict(replace={"layers/0/mask.npy": _violating_mask_bytes(5, slice(0, 3))}),
                                  "'actor.fc0': mask: row 5 group 0 keeps more than 2 of 4"),
    # The last group of an 11-wide row has 3 real columns (padding never counts): 3 kept is N+1.
    "mask overfills the partial last group": (dict(replace={"layers/0/mask.npy": _violating_mask_bytes(7, slice(8, 11))}),
                                              "'actor.fc0': mask: row 7 group 2"),
    # Right element count, wrong item type: np.unpackbits raised a TypeError traceback without the check.
    "mask not uint8": (dict(replace={"layers/0/mask.npy": _mask_bytes_as(np.uint16)}),
                       "'actor.fc0': mask: expected 352 packed bytes for [256, 11], got shape (352,) (uint16)"),
    "mask not 1-D": (dict(replace={"layers/0/mask.npy": _mask_bytes_as(np.uint8, (32, 11))}),
                     "'actor.fc0': mask: expected 352 packed bytes"),
    "garbage array": (dict(replace={"layers/0/weight.npy": b"not numpy"}), "'actor.fc0': weight"),
    "nm without mask": (dict(edit_manifest=lambda m: m["layers"][0].pop("mask")), "'actor.fc0': mask: missing"),
    "missing name": (dict(edit_manifest=lambda m: m["layers"][0].pop("name")), "layer #0: name"),
    "duplicate name": (dict(edit_manifest=_set(["layers", 1, "name"], "actor.fc0")), "'actor.fc0': name: duplicate"),
    "pickled array": (dict(replace={"layers/0/weight.npy": None}), "'actor.fc0': weight"),
    # Names are printed in tables: a terminal escape (clear screen) or a page-long name is refused.
    "control characters in a name": (dict(edit_manifest=_set(["layers", 0, "name"], "fc\x1b[2J")),
                                     "name: must be printable text"),
    "control characters in a network": (dict(edit_manifest=_set(["layers", 0, "network"], "actor\n")),
                                        "'actor.fc0': network: must be printable"),
    "page-long name": (dict(edit_manifest=_set(["layers", 0, "name"], "x" * 5000)), "at most 200 characters"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_give_one_line_naming_layer_and_field(tmp_path, case):
    good = tmp_path / "good.nmw"
    save_workload(make_workload(), good)
    kwargs, expected = BAD[case]
    if kwargs.get("replace", {}).get("layers/0/weight.npy", 1) is None:
        import io, pickle
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([object()], dtype=object), allow_pickle=True)
        kwargs = dict(replace={"layers/0/weight.npy": buf.getvalue()})
    bad = tmp_path / "bad.nmw"
    _rewrite(good, bad, **kwargs)
    with pytest.raises(NmlabError) as info:
        load_workload(bad)
    msg = str(info.value)
    assert expected in msg
    assert "\n" not in msg


def test_truncated_and_missing_files(tmp_path):
    good = tmp_path / "good.nmw"
    save_workload(make_workload(), good)
    data = good.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        (tmp_path / "t.nmw").write_bytes(data[:cut])
        with pytest.raises(NmlabError, match="workload"):
            load_workload(tmp_path / "t.nmw")
    with pytest.raises(NmlabError, match="no such file"):
        load_workload(tmp_path / "absent.nmw")


def test_save_refuses_inconsistent_workload_and_writes_nothing(tmp_path):
    wl = make_workload()
    wl.layers[1].mask = np.ones((256, 256), dtype=bool)  # dense mask declared 2:4
    with pytest.raises(NmlabError, match="'actor.fc1': mask"):
        save_workload(wl, tmp_path / "w.nmw")
    assert list(tmp_path.iterdir()) == []


def test_hwmodel_does_not_import_torch():
    code = "import sys, hwmodel, hwmodel.cli, hwmodel.workload, hwmodel.sparsity; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_saved_file_has_the_permissions_open_would_give(tmp_path):
    # atomic_write goes through mkstemp (mode 0600); the finished file must honour the umask
    # like any other output, or other users of a shared results folder cannot read it.
    import os

    mask = os.umask(0o022)
    try:
        path = tmp_path / "w.nmw"
        save_workload(make_workload(), path)
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)


def test_simulate_rereads_a_workload_file_that_changed(tmp_path):
    """simulate() reuses a parsed workload file only while the file is unchanged."""
    from hwmodel.simulate import simulate
    from hwmodel.workload import save_workload, synthetic_td3_workload

    path = tmp_path / "w.nmw"
    save_workload(synthetic_td3_workload(11, 3, hidden=(64, 64)), path)
    small = simulate(str(path), "edge_ws", batch=1, bits=8).total.macs_dense
    assert simulate(str(path), "edge_ws", batch=1, bits=8).total.macs_dense == small
    save_workload(synthetic_td3_workload(11, 3, hidden=(128, 128)), path)
    assert simulate(str(path), "edge_ws", batch=1, bits=8).total.macs_dense > small


def test_same_workload_writes_the_same_bytes(tmp_path, monkeypatch):
    # A sweep's point ids hash the workload file: exporting the same agent again (an hour later
    # here) must not change them. Zip stamps each member with its write time unless told not to.
    import time

    wl = make_workload()
    save_workload(wl, tmp_path / "a.nmw")
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 3600.0)
    save_workload(wl, tmp_path / "b.nmw")
    assert (tmp_path / "a.nmw").read_bytes() == (tmp_path / "b.nmw").read_bytes()
    with zipfile.ZipFile(tmp_path / "b.nmw") as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}


def test_a_training_run_or_its_checkpoint_given_as_workload_says_to_export_it(tmp_path, capsys):
    # The run folder said "workload: run: is a directory", its checkpoint "has no manifest.json":
    # neither said that `nmlab export` makes the workload of a run.
    from hwmodel.cli import main

    run = tmp_path / "run"
    run.mkdir()
    with zipfile.ZipFile(run / "checkpoint.pt", "w") as zf:  # the layout torch.save writes
        zf.writestr("checkpoint/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("checkpoint/version", b"3\n")
    assert main(["workload", str(run)]) == 2
    assert main(["simulate", "--design", "edge_ws", "--workload", str(run / "checkpoint.pt")]) == 2
    (run / "workload.nmw").write_bytes(b"")  # a finished campaign run holds its export
    assert main(["workload", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"nmlab workload: error: workload: {run}: is a training run, not a workload file; nmlab export {run} --out "
        "FILE.nmw writes its workload",
        f"nmlab simulate: error: workload: {run / 'checkpoint.pt'} is a torch checkpoint, not a workload file; "
        f"nmlab export {run} --out FILE.nmw writes a trained run's workload",
        f"nmlab workload: error: workload: {run}: is a run folder; its workload is {run / 'workload.nmw'}"]


def test_a_training_run_listed_under_a_sweep_configs_workloads_says_to_export_it(tmp_path, capsys):
    # The sweep config's own path check said only "sweep config: workloads[0]: run: is a directory".
    from hwmodel.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (tmp_path / "s.yaml").write_text("version: 1\nworkloads: [run]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"nmlab sweep: error: sweep config: workloads[0]: run: is a training run, not a workload file; nmlab export "
        f"{run} --out FILE.nmw writes its workload"]
    assert not out.exists()


def test_unmasked_weight_is_refused_on_save_and_load(tmp_path):
    # A weight kept where the mask is 0 (an agent trained elsewhere, saved before masking) was written
    # and read back silently, though the format stores weights already masked.
    wl = make_workload()
    layer = wl.layers[1]
    r, c = (int(x) for x in np.argwhere(~layer.mask)[0])
    layer.weight = layer.weight.copy()
    layer.weight[r, c] = 0.5
    with pytest.raises(NmlabError, match=rf"layer 'actor.fc1': weight: row {r} column {c} is 0.5 where the mask is 0 "
                                         r"\(1 such weights\).*pass weight \* mask"):
        save_workload(wl, tmp_path / "w.nmw")
    assert not list(tmp_path.iterdir())
    layer.weight[r, c] = 0.0
    save_workload(wl, tmp_path / "ok.nmw")
    layer.weight[r, c] = 0.5
    # a file holding one (written by other code) is refused on load, naming the file
    members = {}
    with zipfile.ZipFile(tmp_path / "ok.nmw") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        member = manifest["layers"][1]["weight"]
    buf = __import__("io").BytesIO()
    np.save(buf, layer.weight.astype(np.float32))
    members[member] = buf.getvalue()
    _rewrite(tmp_path / "ok.nmw", tmp_path / "bad.nmw", replace=members)
    with pytest.raises(NmlabError, match=r"bad.nmw: layer 'actor.fc1': weight: row .* where the mask is 0"):
        load_workload(tmp_path / "bad.nmw")


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_wider_or_narrower_float_weights_round_trip_as_float32(tmp_path, dtype):
    wl = make_workload()
    for layer in wl.layers:
        if layer.weight is not None:
            layer.weight, layer.bias = layer.weight.astype(dtype), layer.bias.astype(dtype)
    save_workload(wl, tmp_path / "w.nmw")
    back = load_workload(tmp_path / "w.nmw")
    assert all(b.weight.dtype == np.float32 for b in back.layers if b.weight is not None)
    np.testing.assert_array_equal(back.layers[0].weight, wl.layers[0].weight.astype(np.float32))


@pytest.mark.parametrize("key", ["weight", "bias"])
def test_float64_value_beyond_float32_is_refused_not_written_as_inf(tmp_path, key):
    # 1e39 is finite in float64 but inf once stored as float32: save wrote a file load refused.
    wl = make_workload()
    layer = wl.layers[-1]  # the dense layer: no mask
    layer.weight = np.zeros((7, 5), np.float64)
    layer.bias = np.zeros(7, np.float64)
    getattr(layer, key)[(3, 2) if key == "weight" else 3] = -1e39
    idx = "[3, 2]" if key == "weight" else "[3]"
    with pytest.raises(NmlabError, match=rf"layer 'extra.dense': {key}: value -1e\+39 at index {re.escape(idx)} does not fit float32"):
        save_workload(wl, tmp_path / "w.nmw")
    assert not list(tmp_path.iterdir())


def _nm_along_rows(scores, n, m, right=False):
    """Keep the n largest of each group of m consecutive entries of each row (groups from the right with ``right``)."""
    s = scores[:, ::-1] if right else scores
    out, cols = s.shape
    pad = (-cols) % m
    groups = np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf).reshape(out, -1, m)
    keep = np.zeros(groups.shape, bool)
    np.put_along_axis(keep, np.argsort(-groups, axis=-1)[..., :n], True, axis=-1)
    keep = keep.reshape(out, -1)[:, :cols]
    return keep[:, ::-1] if right else keep


@pytest.mark.parametrize("convention, hint", [
    ("column-wise", "\\(it is 2:4 column-wise \\(groups along out_features\\), but nmlab's 2:4 groups 4 consecutive"),
    ("right-aligned", "\\(it is 2:4 with groups counted from the last column, but nmlab's 2:4"),
    ("a few rows off", "\\(nmlab's 2:4 groups 4 consecutive weights of each row"),
])
def test_mask_in_another_nm_convention_is_refused_saying_which_and_what_to_do(tmp_path, convention, hint):
    # Masks made elsewhere: grouped along the output dimension, padded on the left, or N:M but for a row.
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 14))
    if convention == "column-wise":
        mask = _nm_along_rows(np.abs(w.T), 2, 4).T
    elif convention == "right-aligned":
        mask = _nm_along_rows(np.abs(w), 2, 4, right=True)
    else:
        mask = _nm_along_rows(np.abs(w), 2, 4)
        mask[5, :4] = True
    wl = Workload([Layer("pi.fc1", "actor", 14, 64, "2:4", mask=mask)])
    with pytest.raises(NmlabError, match=r"layer 'pi.fc1': mask: row \d+ group \d+ keeps more than 2 of 4, violating 2:4 "
                                         + hint + r".*declare the layer 'unstructured' to run this mask as it is\)$"):
        save_workload(wl, tmp_path / "w.nmw")
    wl.layers[0].pattern = "unstructured"
    save_workload(wl, tmp_path / "w.nmw")
    np.testing.assert_array_equal(load_workload(tmp_path / "w.nmw").layers[0].mask, mask)


@pytest.mark.parametrize("key", ["mask", "weight", "bias"])
def test_non_numpy_arrays_are_a_one_line_error_not_attribute_error(tmp_path, key):
    # A list (or a torch tensor straight from a state_dict) failed with AttributeError on save and simulate.
    import hwmodel

    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    mask = nm_mask(w, "2:4")
    arrays = {"mask": mask, "weight": w * mask, "bias": np.zeros(8, np.float32)}
    arrays[key] = arrays[key].tolist()
    wl = Workload([Layer("actor.fc1", "actor", 4, 8, "2:4", **arrays)])
    expect = rf"layer 'actor.fc1': {key}: must be a numpy array, got builtins.list; pass np.asarray\(...\)"
    with pytest.raises(NmlabError, match=expect):
        save_workload(wl, tmp_path / "w.nmw")
    assert not list(tmp_path.iterdir())
    for design in ("edge_ws", "h100_sxm"):
        with pytest.raises(NmlabError, match=expect):
            hwmodel.simulate(wl, design)


def test_torch_tensor_error_says_how_to_convert(tmp_path):
    torch = pytest.importorskip("torch")
    w = torch.ones(8, 4)
    wl = Workload([Layer("actor.fc1", "actor", 4, 8, weight=w)])
    with pytest.raises(NmlabError, match=r"weight: must be a numpy array, got torch.Tensor; pass tensor.detach\(\).cpu\(\).numpy\(\)"):
        save_workload(wl, tmp_path / "w.nmw")


def test_an_empty_workload_is_refused_on_save_as_on_load(tmp_path):
    # save wrote it; load then said "layers: must be a non-empty list"
    with pytest.raises(NmlabError, match=r"^workload: layers: must be a non-empty list$"):
        save_workload(Workload([]), tmp_path / "w.nmw")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("key", ["mask", "weight"])
def test_an_array_stored_in_by_out_says_to_transpose_it(tmp_path, key):
    # A JAX/Flax or Keras kernel is [in_features, out_features]: the error named only the shapes.
    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    mask = nm_mask(w, "2:4")
    arrays = {"mask": mask, "weight": w * mask}
    arrays[key] = arrays[key].T
    with pytest.raises(NmlabError, match=rf"^layer 'actor.fc1': {key}: shape \(4, 8\) does not match \[out_features, "
                                         rf"in_features\] = \[8, 4\] \(it is \[in_features, out_features\], as JAX and "
                                         rf"Keras store a kernel: pass {key}.T\)$"):
        save_workload(Workload([Layer("actor.fc1", "actor", 4, 8, "2:4", **arrays)]), tmp_path / "w.nmw")
    # a square layer cannot tell: the shapes only
    sq = Workload([Layer("actor.fc1", "actor", 4, 4, "dense", weight=np.zeros((4, 5), np.float32))])
    with pytest.raises(NmlabError, match=r"weight: shape \(4, 5\) does not match \[out_features, in_features\] = \[4, 4\]$"):
        save_workload(sq, tmp_path / "w.nmw")
