"""``nmlab report DIR``: fronts.json, index.html, PNGs and summary.md under ``DIR/report``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from concurrent.futures import ProcessPoolExecutor

from hwmodel.io import atomic_write
from reports import figures, html, quality, summary
from reports.data import load_sweep, plotted_subset
from reports.fronts import compute_fronts, fronts_document
from hwmodel.agents import bundled_published, load_published


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def build_report(out: str | Path, pngs: bool = True, published: Optional[str | Path] = "bundled") -> dict[str, Any]:
    """Write the report of the sweep in ``out``; returns paths and counts.

    Args:
        out: the sweep directory (holds points.parquet); the report goes to ``out/report``.
        pngs: draw the matplotlib PNGs.
        published: CSV of published fractions of dense (``hwmodel.agents.load_published``):
            "bundled" = hwmodel/data/workloads/published_returns.csv, None = none.
    """
    if published == "bundled":
        published = bundled_published()
    out = Path(out)
    df, manifest = load_sweep(out)
    rdir = out / "report"
    rdir.mkdir(parents=True, exist_ok=True)
    notes = []
    n_missing = int(df.return_mean.isna().sum())
    if n_missing:
        one_shot = int((df.get("mask_source") == "one-shot").sum()) if "mask_source" in df else 0
        why = [f"{one_shot} pruned one-shot, never evaluated"] if one_shot else []
        if n_missing > one_shot:
            why.append(f"{n_missing - one_shot} with no entry in the quality table")
        notes.append(
            f"{n_missing} of {len(df)} points have no evaluation return ({'; '.join(why)}): "
            f"they are left out of the return fronts "
            f"(return vs energy, return vs latency, model size vs return) and kept in energy vs latency."
        )
    if manifest and not manifest.get("complete", True):
        notes.append("The sweep in this directory is not complete: run nmlab sweep again to finish it.")
    fronts = compute_fronts(df)
    doc = fronts_document(fronts, notes=notes)
    # RL quality beside hardware gains: from every row (all batches), returns as the sweep joined them.
    qdoc = quality.quality_document(df, load_published(published), manifest.get("quality_table", "unknown"))
    shown_df, plot_note = plotted_subset(df)
    page_notes = notes + ([plot_note] if plot_note else [])
    with atomic_write(rdir / "fronts.json", "w") as fh:
        json.dump(doc, fh, indent=1)
    with atomic_write(rdir / quality.FILENAME, "w") as fh:
        json.dump(qdoc, fh, indent=1)
    # matplotlib is the slow part: draw the PNGs in worker processes while this one writes the page.
    jobs = figures.png_jobs(shown_df, fronts, rdir) if pngs else []
    workers = min(len(jobs), _cpus())
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    futures = [pool.submit(figures._run_job, j) for j in jobs] if pool else []
    try:
        with atomic_write(rdir / "index.html", "w") as fh:
            fh.write(html.render(shown_df, fronts, manifest, page_notes, quality_html=quality.html_section(qdoc)))
        png_paths = [f.result() for f in futures] if pool else [figures._run_job(j) for j in jobs]
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    with atomic_write(rdir / "summary.md", "w") as fh:
        fh.write(summary.render(shown_df, fronts, png_paths, page_notes, total_points=len(df),
                                quality_md=quality.markdown(qdoc)))
    for name in ("fronts.json", quality.FILENAME, "index.html", "summary.md"):
        (rdir / name).chmod(0o644)  # atomic_write's temporary files are private
    return {"dir": rdir, "fronts": len(fronts), "pngs": png_paths, "points": len(df), "missing_return": n_missing}
