"""``nmlab report DIR``: index.html, summary.md, fronts.json and quality_vs_hardware.json under
``DIR/report``; the matplotlib PNGs only on request (``--png``: pictures for papers and pull requests)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from hwmodel.agents import bundled_published, load_published
from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write, remove_stale_temps, replace_refusal, temp_prefix
from hwmodel.limits import check_output_dir
from reports import answer, gpu_model, html, quality, returns, summary
from reports.data import gpu_registry, load_sweep, plotted_subset, register_gpus
from reports.fronts import FRONT_SPECS, compute_fronts, fronts_document
from reports.why import gpu_fixed_times

#: Optional page sections: each is called with (rows shown, whole table, manifest, sweep dir) and returns
#: an ``html.Section`` or None (nothing to show, e.g. no measurements in this sweep). A section module
#: appends its function here (or a caller passes ``extra_sections=``); the page lists each in its
#: navigation after the Pareto fronts.
SectionFn = Callable[[pd.DataFrame, pd.DataFrame, dict, Path], Optional[html.Section]]
OPTIONAL_SECTIONS: list[SectionFn] = [gpu_model.section]  # shown when the sweep has GPU design points


#: The names of the PNGs a report draws (reports.figures.png_jobs, env_png_names): a report removes those of
#: the previous report that it does not draw itself, so the folder never holds PNGs of another sweep or report.
REPORT_PNG = re.compile("|".join([*(re.escape(f"front_{s.name}.png") for s in FRONT_SPECS),
                                  r"speedup_same_bits\.png", r"energy_[a-z0-9_]*\.png"]))

#: The name of the folder (``DIR/report/.report.<pid>-<random>.tmp``) where a report's files are made before
#: they are renamed into place together.
STAGE_NAME = "report"


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class Progress:
    """One line on stderr, rewritten in place as the report is built (silent when ``enabled`` is False)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"nmlab report: {text} ({time.perf_counter() - self.t0:.1f} s)"
        sys.stderr.write(("\r\x1b[2K" + line) if self.tty else line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def _unevaluated(df: pd.DataFrame, shown: int = 4) -> str:
    """The trained agents and bitwidths a sweep's quality table gave no return, as the answer tables
    name them ("Hopper-v5 2:4 (rnm-td3) at 16 b"): what `nmlab evaluate --bits B --csv` would add."""
    sub = df[df.return_mean.isna() & (df["mask_source"] != "one-shot" if "mask_source" in df else True)]
    label = "agent" if "agent" in sub else "pattern"
    keys = sub[["env", label, "method", "bits"]].drop_duplicates().sort_values(["env", label, "method", "bits"])
    items = [f"{e} {a} ({m}) at {int(b)} b" for e, a, m, b in keys.itertuples(index=False)]
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def build_report(out: str | Path, pngs: bool = False, published: Optional[str | Path] = "bundled",
                 progress: bool = False, extra_sections: Optional[list[SectionFn]] = None) -> dict[str, Any]:
    """Write the report of the sweep in ``out``; returns paths and counts.

    Args:
        out: the sweep directory (holds points.parquet); the report goes to ``out/report``.
        pngs: also draw the matplotlib PNGs (slow: several seconds; the page needs none).
        published: CSV of published fractions of dense (``hwmodel.agents.load_published``):
            "bundled" = hwmodel/data/workloads/published_returns.csv, None = none.
        progress: print a progress line on stderr while building.
        extra_sections: optional sections besides ``OPTIONAL_SECTIONS``.
    """
    with gpu_registry():  # which designs are GPUs is this report's (reports.data.register_gpus)
        return _build_report(out, pngs, published, progress, extra_sections)


def _build_report(out: str | Path, pngs: bool, published: Optional[str | Path], progress: bool,
                  extra_sections: Optional[list[SectionFn]]) -> dict[str, Any]:
    say = Progress(progress)
    if published == "bundled":
        published = bundled_published()
    out = Path(out)
    df, manifest = load_sweep(out)  # bad input fails here, before any progress line
    register_gpus(df)  # a GPU spec file outside the bundle gets a GPU's colour and place too
    say(f"{len(df)} points read")
    rdir = check_output_dir(out / "report", "report")  # writable, before the work (creates nothing)
    made_rdir = not os.path.lexists(rdir)
    stage: list[Path] = []  # the folder, inside rdir, where this report's files are made
    try:
        return _make(out, rdir, df, manifest, pngs, published, say, extra_sections, stage)
    except BaseException:
        # Nothing of a failed report stays: neither its files made so far nor the folder it made.
        if stage:
            shutil.rmtree(stage[0], ignore_errors=True)
        if made_rdir:
            try:
                rdir.rmdir()  # only when empty
            except OSError:
                pass
        raise


def _staging(rdir: Path, stage: list[Path]) -> Path:
    """The folder inside ``rdir`` (one file system: the final moves are renames) where the report's files
    are made; made on first use, after removing those of reports that were killed on the way."""
    if not stage:
        rdir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(rdir, STAGE_NAME)
        stage.append(Path(tempfile.mkdtemp(prefix=temp_prefix(STAGE_NAME), suffix=".tmp", dir=rdir)))
    return stage[0]


def _make(out: Path, rdir: Path, df: pd.DataFrame, manifest: dict, pngs: bool, published: Optional[str | Path],
          say: Progress, extra_sections: Optional[list[SectionFn]], stage: list[Path]) -> dict[str, Any]:
    notes = []
    n_missing = int(df.return_mean.isna().sum())
    why: list[str] = []
    if n_missing:
        one_shot = int((df.get("mask_source") == "one-shot").sum()) if "mask_source" in df else 0
        why = [f"{one_shot} pruned one-shot, never evaluated"] if one_shot else []
        if n_missing > one_shot:
            # sweep.json's quality_table is null when the config said quality: none.
            joined = not manifest or manifest.get("quality_table") is not None
            why.append(f"{n_missing - one_shot} with no entry in the quality table: {_unevaluated(df)}" if joined
                       else f"{n_missing - one_shot} trained, but the sweep joined no quality table")
        notes.append(
            f"{n_missing} of {len(df)} points have no evaluation return ({'; '.join(why)}): "
            f"they are left out of the return fronts "
            f"(return vs energy, return vs latency, model size vs return) and kept in energy vs latency."
        )
    # Train-step points carry the return of the agent as trained (fronts, page and summary alike).
    raw = df  # returns as evaluated per bitwidth: the return and quality tables read these
    raw_missing = df.return_mean.isna().to_numpy()
    say("returns and seed spread")
    ret = returns.return_table(raw, manifest.get("quality_table"))
    df = returns.as_trained(df, ret)
    lost = int((df.return_mean.isna().to_numpy() & ~raw_missing).sum())
    if lost:
        notes.append(f"{lost} train-step points have no return of their agent as trained (neither the sweep nor the "
                     f"quality table it joined has one at the agent's own precision): they are left out of the "
                     f"return fronts too.")
    if manifest and not manifest.get("complete", True):
        notes.append("The sweep in this directory is not complete: run nmlab sweep again to finish it.")
    say("computing the Pareto fronts")
    fronts = compute_fronts(df)
    doc = fronts_document(fronts, notes=notes)
    qdoc = quality.quality_document(raw, load_published(published), manifest.get("quality_table", "unknown"), ret)
    df = returns.with_seed_range(df, ret)  # the fronts' returns with their seed range (error bars, tables)
    shown_df, plot_note = plotted_subset(df)
    page_notes = notes + ([plot_note] if plot_note else [])
    cav = returns.caveats(ret)
    for env, notes_ in answer.size_caveats(raw).items():  # agents of another size than dense TD3 (--hidden)
        cav.setdefault(env, []).extend(notes_)
    say("same-bits tables")
    same, quant = answer.same_bits(shown_df, gpu_fixed_times(manifest)), answer.quantization_gain(shown_df)
    answer_html = answer.html_section(shown_df, returns.html_cards(ret, raw), cav, same, quant, ret)
    extra = [s for fn in [*OPTIONAL_SECTIONS, *(extra_sections or [])] if (s := fn(shown_df, df, manifest, out))]
    # matplotlib is the slow part: draw the PNGs in worker processes while this one renders the page.
    jobs, pool, futures = [], None, []
    if pngs:
        from concurrent.futures import ProcessPoolExecutor

        from reports import figures

        jobs = figures.png_jobs(shown_df, fronts, _staging(rdir, stage))
        workers = min(len(jobs), _cpus())
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        futures = [pool.submit(figures._run_job, j) for j in jobs] if pool else []
    try:
        page = html.render(shown_df, fronts, manifest, page_notes, quality_html=quality.html_section(qdoc, caveats=cav),
                           answer_html=answer_html, extra=extra, progress=say)
        if jobs:
            say(f"{len(jobs)} PNGs")
        png_paths = [f.result() for f in futures] if pool else [figures._run_job(j) for j in jobs]
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    say("summary.md")
    md = summary.render(shown_df, fronts, png_paths, page_notes, total_points=len(df),
                        quality_md=quality.markdown(qdoc, cav), answer_md=answer.markdown(shown_df, ret, cav, same, quant))
    # Every file is made in the staging folder first, then all are renamed into place together: a report
    # that fails on the way leaves the previous report's files as they were, never some of them new
    # beside others old (its PNGs included).
    say("writing the files")
    sdir = _staging(rdir, stage)
    texts = {"fronts.json": json.dumps(doc, indent=1), quality.FILENAME: json.dumps(qdoc, indent=1),
             "index.html": page, "summary.md": md}
    for name, text in texts.items():
        with atomic_write(sdir / name, "w") as fh:
            fh.write(text)
    made = [*texts, *(p.name for p in png_paths)]
    for name in made:  # before any rename: a folder where a file goes fails the report, not half of it
        refusal = replace_refusal(rdir / name)
        if refusal:
            raise NmlabError(f"report: {rdir / name}: {refusal}")
    # The PNGs of the previous report that this one does not draw (a report without --png after one with it,
    # or an env no longer swept): summary.md links none of them, and they would show another sweep.
    old = sorted(p for p in rdir.iterdir() if REPORT_PNG.fullmatch(p.name) and p.name not in made
                 and (p.is_file() or p.is_symlink()))
    for name in made:
        (sdir / name).chmod(0o644)  # a report is for reading
        os.replace(sdir / name, rdir / name)
        remove_stale_temps(rdir, name)  # what a writer killed there before staging folders left
    removed = []
    for p in old:
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass  # gone meanwhile, or not ours to remove (permissions): left as it is
    shutil.rmtree(sdir, ignore_errors=True)
    stage.clear()
    png_paths = [rdir / p.name for p in png_paths]
    say.done()
    return {"dir": rdir, "fronts": len(fronts), "pngs": png_paths, "points": len(df), "missing_return": n_missing,
            "missing_why": "; ".join(why), "seconds": time.perf_counter() - say.t0, "removed_pngs": removed}
