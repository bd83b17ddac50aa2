"""Publish reduced-scale results from run directories: CSVs, learning curves, final-return table,
and (``--bundle``) workload exports plus quality rows for the bundled inputs.

    .venv/bin/python -m rl.publish --root runs/reduced --out docs/results/rl --steps 200000
    .venv/bin/python -m rl.publish --bundle runs/reduced/hopper_dense_s0 ...   # export + quality rows
    .venv/bin/python -m rl.publish --bundle runs/c/hopper_gmp_s0 ... --prebuilt  # finished by `nmlab campaign`

Everything in the table is read from the runs' own eval.csv files; nothing is typed in.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Optional

from hwmodel.agents import agent_label, bundled_published, load_published
from hwmodel.io import atomic_write, data_path

PATTERN_ORDER = ["dense", "2:4", "1:4", "1:8"]
METHOD_COLOURS = {"dense": "black", "2:4": "tab:blue", "1:4": "tab:orange", "1:8": "tab:green", "rlx2": "tab:red", "gmp": "tab:purple"}


#: Colours of the other labels of one plot, in turn (none of METHOD_COLOURS').
EXTRA_COLOURS = ["tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "gold", "navy", "lime", "teal",
                 "salmon", "darkred", "indigo", "peru", "slategray"]


def curve_colours(labels: list[str]) -> dict[str, str]:
    """label -> colour, one per label of a plot: a label's own METHOD_COLOURS colour (by its first word:
    'gmp 0.9 QAT8' purple) when no label before it in plot order took it, else the next EXTRA_COLOURS one
    (3:8, 2:8, 1:2 were all grey), then a colour map's past those."""
    import matplotlib

    ordered = sorted(set(labels), key=label_order)
    out: dict[str, str] = {}
    extra = iter(EXTRA_COLOURS)
    for i, label in enumerate(ordered):
        own = METHOD_COLOURS.get(label.split()[0] if label.split() else label)
        if own is None or own in out.values():
            # Past the named ones, hex colours spread over a colour map: never equal to a name above.
            own = next(extra, None) or matplotlib.colors.to_hex(matplotlib.colormaps["hsv"](i / len(ordered)))
        out[label] = own
    return out


def run_label(args: dict) -> str:
    """How a run appears in tables and plots: its N:M pattern or 'dense' (TD3 / RNM-TD3), or
    the method with its sparsity ('rlx2 0.98/0.95' = actor/critic, 'gmp 0.9 QAT8'): the same
    label the sweep gives the run's exported workload (:func:`hwmodel.agents.agent_label`)."""
    return agent_label(args, args.get("method", ""), args["sparsity"])


def label_order(label: str) -> tuple[int, str]:
    """Table and legend order: dense, the N:M patterns, then the other methods by name."""
    return (PATTERN_ORDER.index(label), "") if label in PATTERN_ORDER else (len(PATTERN_ORDER), label)


def published_fractions() -> dict[tuple[str, str], tuple[float, str]]:
    """(env, label) -> (published fraction of dense, source) from hwmodel/data/workloads/published_returns.csv."""
    return load_published(bundled_published())


def read_eval(run_dir: Path) -> tuple[list[tuple[int, float]], set[int]]:
    """(step, mean return) rows of a run's eval.csv, and the episode counts of its evaluations (its
    ``episodes`` column, ``--eval-episodes``; none where it has no such column): one read of the file."""
    path = run_dir / "eval.csv"
    if not path.is_file():
        return [], set()
    from hwmodel.limits import parse_finite, parse_int, read_csv

    # Bounded and checked like every CSV input: a damaged row names its line (was a ValueError traceback).
    header, rows = read_csv(path, "eval log", required=("step", "return_mean"))
    curve = [(parse_int(r["step"], f"eval log {path}: line {n}: step", 0),
              parse_finite(r["return_mean"], f"eval log {path}: line {n}: return_mean")) for n, r in rows]
    if "episodes" not in header:
        return curve, set()
    return curve, {parse_int(r["episodes"], f"eval log {path}: line {n}: episodes", 1) for n, r in rows}


def episodes_text(runs: list[dict]) -> str:
    """'10 deterministic episodes' (or '2 or 10 ...'): what the runs' evaluations averaged, from their eval.csv."""
    counts = sorted(set().union(*(r.get("episodes", set()) for r in runs)))
    return " or ".join(map(str, counts)) + " deterministic episodes" if counts else "deterministic episodes"


def run_info(run_dir: Path) -> Optional[dict]:
    """env, sparsity, seed and eval curve of a run (from args.json and eval.csv), or None."""
    args_path = run_dir / "args.json"
    if not args_path.is_file():
        return None
    from hwmodel.errors import NmlabError
    from hwmodel.limits import is_int, load_json

    args = load_json(args_path, "run")
    # The fields read here and by run_label, checked: a list or a missing key was a traceback.
    if not isinstance(args, dict):
        raise NmlabError(f"run: {args_path}: expected a JSON object (what nmlab train writes), got {type(args).__name__}")
    for key, ok in (("env", lambda v: isinstance(v, str)), ("sparsity", lambda v: isinstance(v, str)),
                    ("seed", is_int), ("steps", is_int), ("method", lambda v: isinstance(v, str))):
        if (key in args or key != "method") and not ok(args.get(key)):
            raise NmlabError(f"run: {args_path}: {key}: missing or of the wrong type, got {str(args.get(key))[:60]}")
    label = run_label(args)
    curve, episodes = read_eval(run_dir)
    return {"name": run_dir.name, "dir": run_dir, "env": args["env"], "sparsity": label, "seed": args["seed"],
            "target_steps": args["steps"], "curve": curve, "episodes": episodes}


def final_return(curve: list[tuple[int, float]], at_step: int, window: int = 3) -> Optional[float]:
    """Mean of the last ``window`` evaluations at or before ``at_step`` (smooths evaluation noise)."""
    pts = [r for s, r in curve if s <= at_step]
    return sum(pts[-window:]) / len(pts[-window:]) if pts else None


def fraction_vs_dense(group: list[dict], dense: list[dict]) -> Optional[dict]:
    """Mean final return of ``group`` over the mean of ``dense`` (runs of one env), both at one step.

    The step is the furthest both sides reached (the smaller of each side's furthest run), and
    only runs that reached it count, so a run still training never drags the comparison back
    to its step nor is compared with finished runs. Seeds are not paired: seed s of two methods
    shares nothing after the first update, so the fraction is a ratio of means (as RLx2 reports
    it). None without runs on both sides or when dense's mean there is not positive (a ratio to
    a negative return means nothing).
    """
    group, dense = [r for r in group if r["curve"]], [d for d in dense if d["curve"]]
    if not group or not dense:
        return None
    at = min(max(r["curve"][-1][0] for r in group), max(d["curve"][-1][0] for d in dense))
    ours = [(r["seed"], final_return(r["curve"], at)) for r in group if r["curve"][-1][0] >= at]
    base = [(d["seed"], final_return(d["curve"], at)) for d in dense if d["curve"][-1][0] >= at]
    base_mean = statistics.mean(v for _, v in base)
    if base_mean <= 0:
        return None
    return {"fraction": statistics.mean(v for _, v in ours) / base_mean, "at": at,
            "seeds": f"{','.join(str(s) for s, _ in ours)} / {','.join(str(s) for s, _ in base)}"}


def table(runs: list[dict], steps: int) -> list[dict]:
    """One row per (env, label): seeds, steps reached, final return (mean and per seed), the
    fraction of dense (``fraction_vs_dense``) and the published fraction of dense where a paper
    reports one (``published_fractions``)."""
    by_key = defaultdict(list)
    for r in runs:
        by_key[(r["env"], r["sparsity"])].append(r)
    published = published_fractions()
    rows = []
    for (env, pattern), group in sorted(by_key.items(), key=lambda kv: (kv[0][0], label_order(kv[0][1]))):
        group = sorted((r for r in group if r["curve"]), key=lambda r: r["seed"])
        if not group:
            continue
        reached = [r["curve"][-1][0] for r in group]
        finals = [final_return(r["curve"], last) for r, last in zip(group, reached)]
        frac = fraction_vs_dense(group, by_key.get((env, "dense"), []))
        rows.append({
            "env": env, "sparsity": pattern, "seeds": len(group),
            "steps_reached": "/".join(str(s) for s in reached), "complete": all(s >= steps for s in reached),
            # Mean over the seeds at the furthest step, so a run still training never drags it down.
            "final_return_mean": round(statistics.mean(f for f, s in zip(finals, reached) if s == max(reached)), 1),
            # RL returns vary a lot between seeds: show each, not only their mean.
            "final_return_per_seed": " / ".join(f"{f:.0f}" for f in finals),
            "fraction_of_dense": round(frac["fraction"], 3) if frac else "",
            "compared_at_steps": frac["at"] if frac else "",
            "compared_seeds": frac["seeds"] if frac else "",
            "published_fraction_of_dense": published.get((env, pattern), ("", ""))[0],
        })
    return rows


def plot_curves(runs: list[dict], out: Path) -> list[Path]:
    """One PNG per env: evaluation return against steps, one colour per pattern, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for env in sorted({r["env"] for r in runs}):
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        seen = set()
        colours = curve_colours([r["sparsity"] for r in runs if r["env"] == env and r["curve"]])
        for r in sorted((r for r in runs if r["env"] == env and r["curve"]), key=lambda r: (label_order(r["sparsity"]), r["seed"])):
            xs, ys = zip(*r["curve"])
            label = r["sparsity"] if r["sparsity"] not in seen else None
            seen.add(r["sparsity"])
            colour = colours[r["sparsity"]]
            ax.plot(xs, ys, color=colour, lw=1.2, ls="-" if r["seed"] == 0 else "--", label=label)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"evaluation return (mean of {episodes_text([r for r in runs if r['env'] == env])})")
        ax.set_title(f"{env}: dense TD3 vs sparse methods (solid seed 0, dashed seed 1)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(title="pattern / method", fontsize=8)
        path = out / f"learning_curves_{env.lower().replace('-v5', '')}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


#: Columns of final_returns.{csv,md}, in order.
COLUMNS = ["env", "sparsity", "seeds", "steps_reached", "complete", "final_return_mean", "final_return_per_seed",
           "fraction_of_dense", "compared_at_steps", "compared_seeds", "published_fraction_of_dense"]


def markdown_table(rows: list[dict]) -> str:
    """The rows of :func:`table` as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]) + "\n"


def publish(root: Path, out: Path, steps: int) -> list[dict]:
    """Copy CSVs, draw curves, write final_returns.{csv,md} under ``out``; returns the table."""
    from hwmodel.errors import NmlabError

    if not root.is_dir():
        raise NmlabError(f"--root: {root}: not a directory of run folders")
    runs = [i for d in sorted(root.iterdir()) if d.is_dir() and (i := run_info(d)) is not None]
    out.mkdir(parents=True, exist_ok=True)
    for r in runs:
        dest = out / r["name"]
        dest.mkdir(exist_ok=True)
        for name in ("eval.csv", "progress.csv", "sad.csv", "losses.csv", "method.csv", "args.json"):
            if (r["dir"] / name).is_file():
                shutil.copyfile(r["dir"] / name, dest / name)
    plot_curves(runs, out)
    rows = table(runs, steps)
    with atomic_write(out / "final_returns.csv", "w") as fh:
        w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    note = (f"Final return: mean of the last 3 evaluations ({episodes_text(runs)} each), averaged over the seeds "
            f"that reached the row's furthest step (`final_return_per_seed`: each seed's at its own last step, in seed "
            f"order, `steps_reached` in the same order). Fraction of dense: the mean final return over seeds "
            f"divided by dense TD3's, both at `compared_at_steps` (the furthest step both sides reached; only runs that "
            f"reached it count; `compared_seeds`: this row's seeds / dense's); seeds are not paired. Blank where dense's "
            f"mean there is not positive (a ratio to a negative return means nothing). "
            f"Target {steps} steps per run; `complete` False means the run has not reached it yet. "
            f"`sparsity`: the N:M pattern (dense TD3 / RNM-TD3), `rlx2 A/C` (actor/critic sparsity) or "
            f"`gmp S QATb`. Published fraction of dense: the paper's own figure at 1M steps "
            f"(hwmodel/data/workloads/published_returns.csv, with sources); ours are reduced-scale runs.\n\n")
    with atomic_write(out / "final_returns.md", "w") as fh:
        fh.write(note + markdown_table(rows))
    return rows


def bundle(run_dirs: list[Path], bits: tuple[int, ...] = (32, 16, 8, 4), episodes: int = 10, prebuilt: bool = False,
           quality_only: bool = False, dest: Optional[Path] = None) -> None:
    """Export each run to <dest>/<run name>.nmw and add its quality rows to <dest>/quality.csv,
    dropping the rows of the same agent and seed (env, method, sparsity, seed) trained for other
    steps, whatever their bits (an earlier run of that seed).

    ``dest``: the bundled workloads folder, ``hwmodel/data/workloads`` by default.
    ``prebuilt``: take the workload and quality rows that ``nmlab campaign`` made when the run
    finished (``workload.nmw``, ``quality.csv`` in its folder, :mod:`rl.campaign`) instead
    of exporting and evaluating again here.
    ``quality_only``: add the quality rows but no workload file: a further seed of an agent
    whose workload is bundled already, so the main job sweeps each agent once while the
    report's returns average every seed.
    """
    from rl.evaluate import evaluate_run, replace_agent_rows
    from rl.export import export_run

    dest = Path(dest) if dest is not None else data_path("workloads")
    if prebuilt:
        _bundle_prebuilt(run_dirs, dest, quality_only)
        return
    from rl.export import refuse_pre_nm_rows, run_pending

    for run_dir in run_dirs:  # every run first: nothing is half-bundled
        refuse_pre_nm_rows(run_pending(run_dir), "bundle")
    for run_dir in run_dirs:
        if not quality_only:
            wl = export_run(run_dir, dest / f"{run_dir.name}.nmw")
            print(f"bundled {run_dir.name}: {wl.meta['steps']} steps, eval {wl.meta['eval_return_mean']:.1f}", flush=True)
        replace_agent_rows(dest / "quality.csv", [evaluate_run(run_dir, b, episodes) for b in bits])
        if quality_only:
            print(f"bundled {run_dir.name}: quality rows at {', '.join(map(str, bits))} bits (no workload file)", flush=True)


def _bundle_prebuilt(run_dirs: list[Path], dest: Path, quality_only: bool) -> None:
    from hwmodel.agents import check_quality_csv
    from hwmodel.errors import NmlabError
    from hwmodel.workload import load_workload
    from rl.campaign import DONE_FILE, QUALITY_FILE, WORKLOAD_FILE
    from rl.evaluate import replace_agent_rows

    check_quality_csv(dest / "quality.csv")
    checked = []  # (run folder, its workload's meta, its quality rows)
    for run_dir in run_dirs:  # check every run first: nothing is half-bundled
        for name in (DONE_FILE, WORKLOAD_FILE, QUALITY_FILE):
            if not (run_dir / name).is_file():
                raise NmlabError(f"bundle: {run_dir / name}: missing (--prebuilt takes runs nmlab campaign finished)")
        # A damaged file is a one-line error here, not in a sweep; its meta is kept for the summary line.
        meta = load_workload(run_dir / WORKLOAD_FILE).meta
        try:
            rows = check_quality_csv(run_dir / QUALITY_FILE)  # its rows go into the bundled table
        except NmlabError as exc:
            raise NmlabError(f"bundle: {run_dir}: {exc}") from None
        checked.append((run_dir, meta, rows))
    for run_dir, meta, rows in checked:
        if not quality_only:
            with atomic_write(dest / f"{run_dir.name}.nmw") as fh:
                fh.write((run_dir / WORKLOAD_FILE).read_bytes())
        replace_agent_rows(dest / "quality.csv", rows)
        print(f"bundled {run_dir.name} (prebuilt): {meta['steps']} steps, eval {meta['eval_return_mean']:.1f}, "
              f"{len(rows)} quality rows", flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("runs/reduced"), help="directory of run folders")
    ap.add_argument("--out", type=Path, default=Path("docs/results/rl"), help="where results go")
    ap.add_argument("--steps", type=int, default=200_000, help="target steps per run (marks runs complete)")
    ap.add_argument("--bundle", type=Path, nargs="*", default=None, help="run dirs to export into the bundled workloads")
    ap.add_argument("--prebuilt", action="store_true",
                    help="with --bundle: use the workload.nmw and quality.csv nmlab campaign made when each run finished")
    ap.add_argument("--quality-only", action="store_true",
                    help="with --bundle: add the runs' quality rows but no workload file (further seeds of a bundled agent)")
    args = ap.parse_args(argv)
    if args.quality_only and args.bundle is None:
        ap.error("--quality-only needs --bundle")
    from hwmodel.errors import NmlabError

    try:
        if args.bundle is not None:
            bundle(args.bundle, prebuilt=args.prebuilt, quality_only=args.quality_only)
            return 0
        rows = publish(args.root, args.out, args.steps)
    except NmlabError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(rows), end="")
    print(f"{len(rows)} rows: {args.out}/final_returns.{{md,csv}}, learning_curves_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
