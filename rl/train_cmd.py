"""CLI registration for `nmlab train`, `nmlab export`, `nmlab evaluate`. Handlers import heavy modules lazily.

The `train` options are the fields of :class:`rl.args.Args` (a module without torch, so
`nmlab --help` never imports it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Callable

from rl.args import Args

_ANNOTATED = {"str": str, "int": int, "float": float, "bool": bool}
#: (name, type, default, help) of every :class:`rl.args.Args` field, in field order.
TRAIN_OPTIONS: list[tuple[str, type, object, str]] = [
    (f.name, _ANNOTATED[f.type], f.default, f.metadata["help"]) for f in dataclasses.fields(Args)
]


#: Bounds of the integer train options (inclusive; a name with a str is a stated limit of
#: hwmodel.limits); any other integer option is 0 .. 10^12. Float options must be finite.
_INT_BOUNDS: dict[str, tuple[int, object]] = {
    "hidden": (1, 1 << 16),
    "buffer_size": (1, "replay_transitions"),
    "batch_size": (1, "batch"),
    "torch_threads": (1, 1024),
    "seed": (0, 2**32 - 1),
    "eval_episodes": (1, 1_000_000),
    "eval_seed_offset": (0, 2**32 - 1),
    "rlx2_mismatch_samples": (1, "replay_transitions"),
    "bits": (2, 32),  # nmlab evaluate --bits (rl.quant.MIN_BITS .. MAX_BITS)
}
_MAX_INT_OPTION = 10**12
_TYPES = {name: typ for name, typ, _default, _help in TRAIN_OPTIONS}


def _option_type(name: str, typ: type):
    """The argparse type of train option ``name``: bounded integers, finite floats, plain strings."""
    from hwmodel.limits import cli_float, cli_int

    if typ is int:
        low, high = _INT_BOUNDS.get(name, (0, _MAX_INT_OPTION))
        return cli_int(low, limit_name=high) if isinstance(high, str) else cli_int(low, high)
    if typ is float:
        return cli_float()
    return typ


def check_option(name: str, value: object) -> object:
    """``value`` of train option ``name`` (an int, float, bool or str, not text to parse),
    checked as the command line checks it: its type, an integer within the option's bounds
    (:data:`_INT_BOUNDS`), a finite float (an int is taken as one). Returns it (floats as
    float); a bad value is one NmlabError naming the option. For values that did not come
    through argparse: a campaign's ``train:`` mapping and a checkpoint's args."""
    from hwmodel.errors import NmlabError
    from hwmodel.limits import finite, is_int, limit, short

    typ = _TYPES[name]
    if typ is int:
        if not is_int(value):
            raise NmlabError(f"{name}: must be an integer, got {short(value)}")
        low, high = _INT_BOUNDS.get(name, (0, _MAX_INT_OPTION))
        high = limit(high) if isinstance(high, str) else high
        if not low <= value <= high:
            raise NmlabError(f"{name}: must be an integer from {low} to {high:,}, got {value:,}")
        return value
    if typ is float:
        return finite(value, name)
    if not isinstance(value, typ):
        raise NmlabError(f"{name}: must be {'true or false' if typ is bool else 'a string'}, got {short(value)}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train`, `export` and `evaluate` to the nmlab parser."""
    p = sub.add_parser("train", help="train TD3 (dense), RNM-TD3 (N:M), RLx2 or GMP(+QAT) sparse TD3 on a gymnasium env",
                       description="Train TD3 / RNM-TD3 / RLx2 / GMP. Knobs not given keep their defaults (or, with --resume, the run's values).")
    for name, typ, default, help_ in TRAIN_OPTIONS:
        flag = "--" + name.replace("_", "-")
        shown = f"{help_} (default: {default!r})".replace("%", "%%")  # argparse %-formats help text
        if typ is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=shown)
        else:
            p.add_argument(flag, dest=name, type=_option_type(name, typ), default=None, help=shown, metavar=name.upper())
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="write a trained run's six networks as a workload file (.nmw)")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by nmlab train")
    p.add_argument("--out", required=True, metavar="FILE", help="workload file to write (.nmw)")
    p.add_argument("--episodes", type=_option_type("eval_episodes", int), default=None,
                   help="episodes to evaluate when eval.csv has no final row")
    p.set_defaults(func=_export)

    p = sub.add_parser("evaluate", help="return of a trained actor with weights fake-quantized to --bits")
    p.add_argument("run_dir", metavar="DIR", help="run directory written by nmlab train")
    p.add_argument("--bits", type=_option_type("bits", int), required=True,
                   help="weight bitwidth, 2..32 (32 = float32, no quantization)")
    p.add_argument("--episodes", type=_option_type("eval_episodes", int), default=10, help="evaluation episodes (default 10)")
    p.add_argument("--quantize-activations", action="store_true", help="also fake-quantize every layer's input, per tensor")
    p.add_argument("--csv", metavar="FILE", default=None, help="add the result to this quality CSV (atomic rewrite; replaces a row of the same env, method, sparsity, bits and seed)")
    p.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from hwmodel.limits import check_output_dir

    given = {name: getattr(args, name) for name, *_ in TRAIN_OPTIONS if getattr(args, name) is not None}
    default_out = next(default for name, _t, default, _h in TRAIN_OPTIONS if name == "out")
    out = check_output_dir(given.get("out", default_out), "--out")  # before torch is even imported
    existed = out.exists()

    from hwmodel.stop import interrupt_status, sigterm_as_interrupt
    from rl import td3

    cfg = td3.Args(**given)
    try:
        with sigterm_as_interrupt():  # a scheduler's SIGTERM stops the run as Ctrl-C does
            summary = td3.train(cfg, explicit=set(given))
    except NmlabError:
        # A bad option found once training had set up leaves no empty run folder behind.
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    except td3.TrainingInterrupted as stop:
        # Say what survives: the steps since the last checkpoint are lost (a resume retrains them).
        where = f"interrupted at step {stop.step} of {stop.steps}"
        if stop.checkpoint_step is None:
            print(f"nmlab train: {where}, before the first checkpoint (step {stop.first_checkpoint}): "
                  f"nothing to resume; remove {cfg.out} to start again", file=sys.stderr)
        else:
            print(f"nmlab train: {where}; last checkpoint at step {stop.checkpoint_step} (steps after it are "
                  f"trained again, with the same result); continue with: nmlab train --out {cfg.out} --resume",
                  file=sys.stderr)
        return interrupt_status()
    ev, sd = summary["eval_return_mean"], summary["eval_return_std"]
    ev_text = "-" if ev is None else f"{ev:.1f} +- {sd:.1f}"
    print(f"trained {summary['steps']} steps ({summary['steps_this_session']} in this invocation, "
          f"{summary['steps_per_s']:.1f} steps/s; {summary['updates']:,} gradient updates); "
          f"final eval return: {ev_text}; run in {cfg.out}")
    return 0


def _note_nm_pending(method: Any, sparsity: Any, run_dir: str, note: Callable[[str, str, int], str]) -> None:
    """Print ``note`` (:func:`rl.export.export_note` or :func:`rl.export.return_note`) for a gradual-N:M GMP
    run (``method`` gmp, ``sparsity`` N:M) before its schedule ended (:func:`rl.export.nm_pending`); other
    runs' checkpoints are not read again."""
    if method == "gmp" and ":" in str(sparsity):
        from rl.export import run_pending

        pending = run_pending(run_dir)
        if pending:
            print(note(*pending), file=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    from hwmodel.limits import check_output_file

    # Before torch is imported. The run's checkpoint and eval.csv are what the export reads:
    # `--out RUN/checkpoint.pt` replaced the checkpoint with the workload, destroying the run.
    run = os.path.expanduser(args.run_dir)
    check_output_file(args.out, "--out", inputs=[("run's checkpoint", os.path.join(run, "checkpoint.pt")),
                                                 ("run's eval.csv", os.path.join(run, "eval.csv"))])
    from rl.export import export_note, export_run

    wl = export_run(args.run_dir, args.out, args.episodes)
    if any(layer.pattern == "unstructured" for layer in wl.layers):  # else its N:M masks are reached: no reload
        _note_nm_pending(wl.meta.get("method"), wl.meta.get("sparsity"), args.run_dir, export_note)
    m = wl.meta
    print(f"wrote {args.out}: {len(wl.layers)} layers, {m['env']} {m['method']} {m['sparsity']} seed {m['seed']} "
          f"at {m['steps']} steps, eval return {m['eval_return_mean']:.1f} +- {m['eval_return_std']:.1f}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from hwmodel.agents import check_quality_csv

    if args.csv and args.quantize_activations:
        raise NmlabError("csv: the quality table records weight-only quantization; drop --quantize-activations or --csv")
    if args.csv:
        check_quality_csv(args.csv)  # before the evaluation: it is the slow part
    from rl.evaluate import append_quality_row, evaluate_run
    from rl.export import return_note

    # With --csv a gmp N:M run whose masks are not N:M yet is refused before it is evaluated: its row
    # would say the N:M target, and a sweep would average it with that agent's finished seeds.
    row = evaluate_run(args.run_dir, args.bits, args.episodes, args.quantize_activations,
                       table="--csv" if args.csv else None)
    print(f"{row['env']} {row['method']} {row['sparsity']} seed {row['seed']} at {row['steps']} steps, "
          f"{row['bits']}-bit weights{' and activations' if args.quantize_activations else ''}: "
          f"return {row['return_mean']:.1f} +- {row['return_std']:.1f} over {row['episodes']} episodes")
    if args.csv:
        append_quality_row(args.csv, row)
    else:
        sys.stdout.flush()  # the result line before the note
        _note_nm_pending(row["method"], row["sparsity"], args.run_dir, return_note)
    sys.stdout.flush()
    return 0
