"""nmlab report on a points.parquet that a sweep did not write: one NmlabError line naming the
column (exit status 2) and nothing written; a report that fails on the way leaves the previous
report's files untouched rather than some new beside others old."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hwmodel.errors import NmlabError
from reports import build, summary
from reports.build import build_report


def _copy(default_sweep, tmp_path, edit=None):
    """The default sweep's table and manifest in a fresh directory, ``edit`` applied to the table."""
    out = tmp_path / "sweep"
    out.mkdir(parents=True)
    shutil.copy(default_sweep / "sweep.json", out / "sweep.json")
    df = pd.read_parquet(default_sweep / "points.parquet")
    (edit(df) if edit is not None else df).to_parquet(out / "points.parquet")
    return out


def _set(col, value, rows=slice(0, 3)):
    def edit(df):
        df = df.copy()
        if df[col].dtype.kind in "iu":
            df[col] = df[col].astype("float64")
        df.loc[df.index[rows], col] = value
        return df
    return edit


@pytest.mark.parametrize("edit, needle", [
    (_set("latency_s", np.inf), "column 'latency_s': 3 of 504 rows are infinite"),
    (_set("energy_pj", -1.0), "column 'energy_pj': 3 of 504 rows are infinite, negative"),
    (_set("model_bytes", np.inf), "column 'model_bytes': 3 of 504"),
    (_set("return_mean", -np.inf), "column 'return_mean': 3 of 504 rows are infinite"),
    (lambda df: df.assign(latency_s=df.latency_s.astype(str)), "column 'latency_s': 504 of 504 rows are not numbers"),
    (lambda df: df.assign(bits=df.bits.astype(str)), "column 'bits': 504 of 504 rows are not numbers"),
    (lambda df: df.assign(design=np.arange(len(df))), "column 'design': 504 of 504 rows are not text"),
    (lambda df: df.assign(pattern=7), "column 'pattern': 504 of 504 rows are not text"),
    (_set("env", None), "column 'env': 3 of 504 rows are empty"),
    (_set("design", None), "column 'design': 3 of 504 rows are empty"),
    (_set("batch", np.nan), "column 'batch': 3 of 504 rows are not whole numbers of at least 1"),
    (_set("bits", 2.5), "column 'bits': 3 of 504 rows are not whole numbers from 1 to 32"),
    (lambda df: pd.concat([df, df.iloc[:2]]), "column 'point_id': 2 of 506 rows repeat an earlier row's id"),
])
def test_bad_values_are_one_line_naming_the_column_and_write_nothing(default_sweep, tmp_path, edit, needle):
    out = _copy(default_sweep, tmp_path, edit)
    with pytest.raises(NmlabError, match="report: .*points.parquet: " + needle.replace("(", r"\(")):
        build_report(out)
    assert not (out / "report").exists()


@pytest.mark.parametrize("column", ["method", "mask_source", "speedup_vs_dense", "energy_ratio_vs_dense"])
def test_a_column_the_report_reads_is_required(default_sweep, tmp_path, column):
    """Each of these ended in a KeyError or AttributeError when missing."""
    out = _copy(default_sweep, tmp_path, lambda df: df.drop(columns=[column]))
    with pytest.raises(NmlabError, match=f"column '{column}' missing"):
        build_report(out)
    assert not (out / "report").exists()


def test_two_rows_of_one_agent_cell_are_one_line_exit_2(default_sweep, tmp_path):
    """Two points with different ids but the same agent, design, scenario and bits (a table merged by
    hand): the same-bits table refuses to average them, as one line with exit status 2."""
    def twin(df):
        extra = df[df.pattern == "2:4"].iloc[:1].copy()
        extra["point_id"] = "f" * 16
        return pd.concat([df, extra])

    out = _copy(default_sweep, tmp_path, twin)
    run = subprocess.run([sys.executable, "-m", "hwmodel", "report", "-q", str(out)], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "refusing to average them" in run.stderr
    assert not (out / "report").exists()


def test_a_failed_report_leaves_the_previous_one_as_it_was(default_sweep, tmp_path, monkeypatch):
    out = _copy(default_sweep, tmp_path)
    build_report(out)
    before = {p.name: p.read_bytes() for p in (out / "report").iterdir()}
    assert set(before) >= {"index.html", "summary.md", "fronts.json", "quality_vs_hardware.json"}
    df = pd.read_parquet(out / "points.parquet")
    df.loc[df.pattern == "2:4", "latency_s"] *= 2  # the next report would have other fronts
    df.to_parquet(out / "points.parquet")

    def broken(*args, **kwargs):
        raise RuntimeError("summary failed")

    monkeypatch.setattr(summary, "render", broken)
    with pytest.raises(RuntimeError, match="summary failed"):
        build_report(out)
    assert {p.name: p.read_bytes() for p in (out / "report").iterdir()} == before
    # A first report that fails makes no report folder at all.
    fresh = _copy(default_sweep, tmp_path / "fresh")
    monkeypatch.setattr(build.html, "render", broken)
    with pytest.raises(RuntimeError):
        build_report(fresh)
    assert not (fresh / "report").exists()


def _sweep(tmp_path, **config):
    """A small real sweep (bundled workloads and quality table, edge_ws) and its report."""
    import yaml

    from sweeps import api

    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({"designs": ["edge_ws"], "gpus": "none", **config}))
    out = tmp_path / "out"
    api.run(str(cfg), out, workers=1, progress=False)
    build_report(out)
    return (out / "report" / "summary.md").read_text(), (out / "report" / "index.html").read_text()


def test_a_sweep_without_dense_at_its_own_precision_says_so_not_that_dense_has_no_return(tmp_path):
    """bits [8, 4] with a quality table that has no 32-bit dense TD3 row either: no fraction of dense can be
    given. The page and summary say why, in words, and give the returns themselves; before, they said
    'dense TD3 has no positive return here' (false) over cells of 'nan [nan-nan]' and a caption '(nan = 1.00)'.
    (With the bundled table, which has that row, the reference is taken from it: tests/test_report_quality.py.)"""
    from hwmodel.io import data_path

    lines = data_path("workloads", "quality.csv").read_text().splitlines()
    quality = tmp_path / "quality.csv"
    quality.write_text("\n".join(ln for ln in lines if ",td3,dense,32," not in ln) + "\n")
    md, page = _sweep(tmp_path, bits=[8, 4], patterns=["dense", "2:4"], quality=str(quality))
    why = "the sweep has no return of dense TD3 at its own precision (32 bits)"
    assert f"Caveat: {why}: no fraction of dense can be given" in md and why in page
    assert "no positive return" not in md + page
    assert "nan" not in md.lower() and "nan = 1.00" not in page
    df = pd.read_parquet(tmp_path / "out" / "points.parquet")
    dense8 = df[(df.env == "Hopper-v5") & (df.pattern == "dense") & (df.bits == 8)].return_mean.iloc[0]
    # The return itself, with its seed range; no 32-bit value of dense (the table lacks it: '-' as trained).
    assert f"| dense (td3) | 32 | - | {dense8:.0f} [" in md


def test_a_sweep_without_dense_has_no_empty_quantization_table(tmp_path):
    md, page = _sweep(tmp_path, bits=[8], patterns=["2:4"])
    assert "the sweep has no dense TD3 agent for this env" in md
    assert "**Quantization alone**" not in md
    assert 'class="ans quant"' not in page


def test_summary_md_holds_no_html(default_sweep):
    """The 'why the extreme cells are extreme' lines came to summary.md as HTML: escaped entities
    (dense&#x27;s) and <span> tags in the Markdown."""
    md = (default_sweep / "report" / "summary.md").read_text()
    assert "Why the extreme cells are extreme" in md and "dense's energy" in md
    assert not re.search(r"&#?\w+;|</?(span|b|td|p)\b", md)


def test_missing_returns_of_a_sweep_without_quality_table_say_so(tmp_path):
    """quality: none: the note said '48 with no entry in the quality table' of a sweep that joined none."""
    md, page = _sweep(tmp_path, bits=[8], patterns=["dense", "2:4", "1:8"])
    assert "the sweep joined no quality table" not in md  # the bundled table was joined
    md, page = _sweep(tmp_path / "none", bits=[8], patterns=["dense", "2:4", "1:8"], quality="none")
    note = "12 of 12 points have no evaluation return (12 trained, but the sweep joined no quality table)"
    assert note in md and note in page
    assert "no entry in the quality table" not in md + page


def test_the_report_commands_note_on_missing_returns_says_why(tmp_path, capsys):
    """The command's last line said only 'N points have no evaluation return', where the page says why."""
    from hwmodel.cli import main

    _sweep(tmp_path, bits=[8], patterns=["dense", "2:4"], quality="none")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "out"), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "note: 8 points have no evaluation return (8 trained, but the sweep joined no quality table); "
        "they are left out of the return fronts")


@pytest.mark.parametrize("text, needle", [
    ("[]", "expected a JSON object (a sweep manifest), got list"),
    ('{"quality_table": 5}', "quality_table: expected a path or null, got 5"),
    ('{"complete": "no"}', 'complete: expected true or false, got "no"'),
    ('{"complete": true, "points": "many"}', 'points: expected a count of points, got "many"'),
    # Read bounded like every JSON input: these were a RecursionError traceback, or a report made
    # as if the manifest were absent (saying the sweep was complete without knowing).
    ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ('{"points": NaN}', "non-finite number NaN"),
    ('{"complete": tru', "not valid JSON"),
])
def test_a_sweep_json_that_is_not_a_manifest_is_one_line(default_sweep, tmp_path, text, needle):
    """It parsed, so it was used: a list ended in AttributeError, a number as quality_table in TypeError."""
    out = _copy(default_sweep, tmp_path)
    (out / "sweep.json").write_text(text)
    with pytest.raises(NmlabError, match="report: .*sweep.json: " + re.escape(needle)):
        build_report(out)
    assert not (out / "report").exists()


def test_an_unfinished_sweep_folder_names_the_command_to_finish_it(tmp_path):
    """sweep.json but no points.parquet (a sweep killed before its table): the error said 'run nmlab sweep
    --out DIR first', which would sweep the default grid into a folder started with another config."""
    import json

    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"format": "nmlab-sweep", "version": 1, "config_file": "mine.yaml",
                                                "complete": False}))
    with pytest.raises(NmlabError, match=r"the sweep in .* did not finish; run the nmlab sweep command that started "
                                         r"it \(config mine.yaml, --out .*\) again to finish it"):
        build_report(out)
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]


def test_a_file_or_a_missing_folder_given_for_dir_says_what_it_is(default_sweep, tmp_path):
    """`nmlab report results/points.parquet` (a file) or a misspelt folder said "DIR/points.parquet not
    found; run nmlab sweep --out DIR first": a path under a file, and advice to sweep into it."""
    table = _copy(default_sweep, tmp_path) / "points.parquet"
    before = table.read_bytes()
    with pytest.raises(NmlabError, match=f"^report: {re.escape(str(table))}: is a file, not a sweep folder "
                                         r"\(give the --out folder of nmlab sweep, which holds points.parquet\)$"):
        build_report(table)
    assert table.read_bytes() == before and not (table.parent / "report").exists()
    with pytest.raises(NmlabError, match=f"^report: no such folder: {re.escape(str(tmp_path / 'reslts'))} "):
        build_report(tmp_path / "reslts")
    assert not (tmp_path / "reslts").exists()
    table.unlink()
    table.mkdir()
    with pytest.raises(NmlabError, match=f"^report: {re.escape(str(table))}: is a directory, not the sweep's table$"):
        build_report(table.parent)


def test_a_report_path_that_is_a_file_is_refused_before_the_work(default_sweep, tmp_path, monkeypatch):
    """DIR/report a file: a FileExistsError traceback once every output was made."""
    out = _copy(default_sweep, tmp_path)
    (out / "report").write_text("not a folder")

    def never(*args, **kwargs):
        raise AssertionError("the work started before the output folder was checked")

    monkeypatch.setattr(build, "compute_fronts", never)
    with pytest.raises(NmlabError, match=r"report: .*report: exists and is not a directory"):
        build_report(out)
    assert (out / "report").read_text() == "not a folder"


@pytest.mark.parametrize("kind", ["report", "parts", "run", "campaign"])
def test_a_folder_of_another_kind_given_for_dir_says_what_it_is(tmp_path, kind):
    """`nmlab report results/report` (a sweep's own report/ or parts/ folder), a training run or a
    campaign folder said "DIR/points.parquet not found; run nmlab sweep --out DIR first": advice to
    sweep into the report's folder, or into a run."""
    sweep = tmp_path / "results"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    if kind in ("report", "parts"):
        given = sweep / kind
        given.mkdir()
        why = f"is the {kind}/ folder of the sweep in {sweep}, not a sweep folder; give {sweep}"
    else:
        given = tmp_path / kind
        given.mkdir()
        (given / ("checkpoint.pt" if kind == "run" else "campaign.lock")).write_bytes(b"")
        why = ("is a training run (nmlab train --out)" if kind == "run" else
               "is a campaign folder (nmlab campaign --out)") + ", not a sweep folder; a sweep runs its"
    with pytest.raises(NmlabError, match=f"^report: {re.escape(str(given))}: {re.escape(why)}"):
        build_report(given)
    assert not (given / "report").exists()


def _small(df):
    """Two designs of the default sweep: PNGs in a few seconds."""
    return df[df.design.isin(["edge_ws", "flex_nm"])].reset_index(drop=True)


def _files(rdir):
    """Every entry of the report folder (hidden ones too: temporary files) and its bytes."""
    return {p.name: (p.read_bytes() if p.is_file() else None) for p in rdir.iterdir()}


def _slower_2_4(out):
    df = pd.read_parquet(out / "points.parquet")
    df.loc[df.pattern == "2:4", "latency_s"] *= 2  # the next report would have other fronts and PNGs
    df.to_parquet(out / "points.parquet")


@pytest.mark.parametrize("where", ["after the PNGs", "in one PNG"])
def test_a_failed_png_report_leaves_the_previous_pngs_as_they_were(default_sweep, tmp_path, monkeypatch, where):
    """The PNGs were written into DIR/report as they were drawn, the other files only at the end: a report that
    failed after the PNGs (or in one of them) left some new PNGs beside the previous report's page and summary."""
    from reports import figures

    monkeypatch.setattr(build, "_cpus", lambda: 1)  # the jobs in this process: the broken one below is seen
    out = _copy(default_sweep, tmp_path, _small)
    build_report(out, pngs=True)
    rdir = out / "report"
    before = _files(rdir)
    assert "front_energy_vs_latency.png" in before and "energy_hopper_v5.png" in before
    _slower_2_4(out)

    def broken(*args, **kwargs):
        raise RuntimeError("failed on the way")

    if where == "after the PNGs":
        monkeypatch.setattr(summary, "render", broken)
    else:
        monkeypatch.setattr(figures, "energy_png", broken)
    with pytest.raises(RuntimeError, match="failed on the way"):
        build_report(out, pngs=True)
    assert _files(rdir) == before  # no new PNG, no temporary file or folder
    monkeypatch.undo()
    monkeypatch.setattr(build, "_cpus", lambda: 1)
    after = build_report(out, pngs=True)  # the same report, not failing: new PNGs, so the check above could fail
    assert _files(rdir)["front_energy_vs_latency.png"] != before["front_energy_vs_latency.png"]
    assert {p.name for p in after["pngs"]} == {n for n in before if n.endswith(".png")}
    assert all(p.parent == rdir for p in after["pngs"])


def test_a_first_png_report_that_fails_leaves_no_report_folder(default_sweep, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "_cpus", lambda: 1)
    out = _copy(default_sweep, tmp_path, _small)

    def broken(*args, **kwargs):
        raise RuntimeError("summary failed")

    monkeypatch.setattr(summary, "render", broken)
    with pytest.raises(RuntimeError):
        build_report(out, pngs=True)
    assert not (out / "report").exists()


def test_a_report_keeps_no_png_of_the_previous_report_that_it_does_not_draw(default_sweep, tmp_path, monkeypatch,
                                                                              capsys):
    """A report without --png after one with it kept the old PNGs (of the sweep as it was then) beside a page
    and a summary.md that link none of them; so did a PNG report after an env left the sweep. The report folder
    holds one report: such PNGs are removed; files a report never writes are left alone."""
    monkeypatch.setattr(build, "_cpus", lambda: 1)
    out = _copy(default_sweep, tmp_path, _small)
    build_report(out, pngs=True)
    rdir = out / "report"
    (rdir / "notes.txt").write_text("mine")
    (rdir / "my_plot.png").write_bytes(b"mine")
    df = pd.read_parquet(out / "points.parquet")
    df[df.env != "Hopper-v5"].to_parquet(out / "points.parquet")  # Hopper-v5 is no longer swept
    info = build_report(out, pngs=True)
    names = {p.name for p in rdir.iterdir()}
    assert "energy_halfcheetah_v5.png" in names and "energy_hopper_v5.png" not in names
    assert [p.name for p in info["removed_pngs"]] == ["energy_hopper_v5.png"]
    assert "energy_hopper_v5" not in (rdir / "summary.md").read_text()
    info = build_report(out)  # no --png
    assert {p.name for p in rdir.iterdir()} == {"index.html", "summary.md", "fronts.json", "quality_vs_hardware.json",
                                                "notes.txt", "my_plot.png"}
    assert len(info["removed_pngs"]) == 7 and not info["pngs"]
    assert ".png" not in (rdir / "summary.md").read_text()
    # What the command says, one PNG in the singular ("removed 1 PNGs" before).
    (rdir / "energy_gone_v5.png").write_bytes(b"old")
    from hwmodel.cli import main

    assert main(["report", str(out), "--quiet"]) == 0
    assert ("removed 1 PNG of the previous report that this one does not draw (no --png): energy_gone_v5.png"
            in capsys.readouterr().out)


def test_a_killed_reports_staging_folder_is_removed_and_a_folder_in_a_files_place_fails_first(default_sweep, tmp_path,
                                                                                               monkeypatch):
    monkeypatch.setattr(build, "_cpus", lambda: 1)
    out = _copy(default_sweep, tmp_path, _small)
    build_report(out)
    rdir = out / "report"
    dead = rdir / f".{build.STAGE_NAME}.{2**22 + 1}-x.tmp"  # over any pid Linux gives: its writer is gone
    dead.mkdir()
    (dead / "front_energy_vs_latency.png").write_bytes(b"half")
    build_report(out)
    assert not dead.exists()
    before = _files(rdir)
    _slower_2_4(out)
    (rdir / "speedup_same_bits.png").mkdir()
    with pytest.raises(NmlabError, match=r"speedup_same_bits.png: is a directory"):
        build_report(out, pngs=True)
    assert _files(rdir) == {**before, "speedup_same_bits.png": None}
