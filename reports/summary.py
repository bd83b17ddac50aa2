"""The Markdown summary ``DIR/report/summary.md``: fronts as tables, best ratios, links to the PNGs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from reports.data import design_order, fmt_ratio, front_formats, md_text, pattern_order, per_scenario, section_key, seed_range_text
from reports.fronts import FRONT_SPECS


def _front_rows(df: pd.DataFrame, ids: list[str]) -> str:
    if not ids:
        return "_no points_\n"
    cols = ["point_id", "design", "pattern", "bits", "method", "mask_source", "latency_s", "energy_pj", "model_bytes",
            "fits_in_sram", "return_mean", "return_min", "return_max"]
    f = df[[c for c in cols if c in df.columns]].set_index("point_id").loc[ids].reset_index()
    lines = ["| design | pattern | bits | method | mask | latency | energy | model size | fits SRAM | return | id |",
             "|---|---|---:|---|---|---:|---:|---:|---|---:|---|"]
    fmt = front_formats(f)
    seeds = {"return_min", "return_max"} <= set(f.columns)
    for r in f.itertuples():
        fits = getattr(r, "fits_in_sram", None)
        ret = fmt["return_mean"](r.return_mean)
        if seeds and r.return_min == r.return_min:
            ret += f" [{seed_range_text(r.return_min, r.return_max)}]"  # the lowest and highest seed's return
        lines.append(f"| {md_text(r.design)} | {md_text(r.pattern)} | {r.bits} | {md_text(getattr(r, 'method', ''))} | "
                     f"{md_text(r.mask_source)} | "
                     f"{fmt['latency_s'](r.latency_s)} | {fmt['energy_pj'](r.energy_pj)} | "
                     f"{fmt['model_bytes'](r.model_bytes)} | {'yes' if fits else 'no'} | {ret} | `{r.point_id}` |")
    return "\n".join(lines) + "\n"


def render(df: pd.DataFrame, fronts: list[dict[str, Any]], pngs: list[Path], notes: list[str],
           total_points: Optional[int] = None, quality_md: str = "", answer_md: str = "") -> str:
    """Markdown of the rows in ``df`` (maybe a subset of the sweep's ``total_points``) and their fronts;
    ``answer_md`` (reports.answer.markdown) comes first, then ``quality_md`` (the "RL quality vs hardware"
    section), then the per-section front tables."""
    designs = design_order(df.design.unique())
    total_points = len(df) if total_points is None else total_points
    shown_txt = "" if total_points == len(df) else f" ({len(df)} shown here)"
    out = [
        "# nmlab sweep summary\n",
        f"{total_points} points{shown_txt}: envs {', '.join(map(md_text, sorted(df.env.unique())))}; "
        f"designs {', '.join(map(md_text, designs))}; patterns {', '.join(map(md_text, pattern_order(df.pattern)))}; bits {', '.join(str(b) for b in sorted(df.bits.unique(), reverse=True))}; "
        f"scenarios {', '.join(sorted({f'{s} (batch {b})' for s, b in zip(df.scenario, df.batch)}))}.\n",
        "Fronts as data: `fronts.json` (point ids, objectives and senses); interactive page: `index.html`.\n",
    ]
    out += [f"> {md_text(n)}\n" for n in notes]
    out.append(answer_md)
    if quality_md:
        out.append(quality_md)
    by = {(f["name"], f["group"]["env"], f["group"]["scenario"], f["group"]["batch"]): f
          for f in fronts if f["group"]["design"] is None}
    for (env, sc, batch), rows in df.groupby(["env", "scenario", "batch"], sort=True):
        out.append(f"\n## {md_text(section_key(env, sc, int(batch)))}\n")
        sparse = rows[(rows.pattern != "dense") & rows.speedup_vs_dense.notna()] if "speedup_vs_dense" in rows else rows.iloc[:0]
        if len(sparse):
            best = sparse.loc[sparse.speedup_vs_dense.idxmax()]
            low = sparse.loc[sparse.energy_ratio_vs_dense.idxmin()]
            def who(r) -> str:
                return f"{md_text(r.agent if 'agent' in r else r.pattern)} at {r.bits} bits on {md_text(r.design)}"

            # A best that is no gain (a tie at 1.00x among agents that run dense) names no winner.
            sp, en = fmt_ratio(best.speedup_vs_dense), fmt_ratio(low.energy_ratio_vs_dense)
            faster = (f"largest speedup vs dense at the same bits: {sp}x ({who(best)})" if best.speedup_vs_dense > 1
                      and sp != "1.00" else f"no sparse point is faster than dense at the same bits (at best {sp}x)")
            saves = (f"lowest energy ratio: {en} ({who(low)})" if low.energy_ratio_vs_dense < 1 and en != "1.00"
                     else f"none uses less energy than dense (at best {en})")
            out.append(f"{faster[0].upper() + faster[1:]}; {saves}.\n")
        for spec in FRONT_SPECS:
            f = by.get((spec.name, env, sc, int(batch)))
            if f is None:
                continue
            obj = ", ".join(f"{o['sense']} {o['column']}" for o in f["objectives"])
            extra = f"; {f['excluded_missing']} points without return left out" if f["excluded_missing"] else ""
            out.append(f"\n**{per_scenario(spec.title, sc)}** ({obj}; {len(f['point_ids'])} of {f['candidates']} points on the front{extra})\n\n")
            out.append(_front_rows(rows, f["point_ids"]))
    out.append("\n## Figures\n")
    out += [f"![{p.stem}]({p.name})\n" for p in pngs]
    head, body = "\n".join(out[:CONTENTS_AT + len(notes)]), "\n".join(out[CONTENTS_AT + len(notes):])
    return head + "\n" + contents(body) + "\n" + body


#: The contents list goes after the title, the sweep's one-line description, the fronts line and the notes.
CONTENTS_AT = 3


def heading_anchor(text: str) -> str:
    """The anchor GitHub and GitLab give a Markdown heading: the text as read (backslash escapes dropped),
    lower case, every character but letters, digits, spaces, ``-`` and ``_`` removed, spaces as ``-``."""
    text = re.sub(r"\\(.)", r"\1", text).lower()
    return "".join(ch for ch in text if ch.isalnum() or ch in " -_").replace(" ", "-")


def contents(md: str, depth: int = 4) -> str:
    """A contents list of ``md``'s headings ``##`` to ``depth`` ``#``s, nested by level, each a link to its
    heading's anchor (a repeated heading's anchor numbered ``-1``, ``-2`` as GitHub numbers them): summary.md of
    a big sweep is thousands of lines."""
    seen: dict[str, int] = {}
    lines = ["## Contents\n"]
    for m in re.finditer(r"^(#{2,6}) (.+?)\s*$", md, re.M):
        level, text = len(m.group(1)), m.group(2)
        base = heading_anchor(text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        if level <= depth:
            lines.append(f"{'  ' * (level - 2)}- [{text}](#{base}{f'-{n}' if n else ''})")
    return "\n".join(lines) + "\n"
