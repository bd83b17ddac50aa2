"""CLI registration for `nmlab train`, `nmlab export`, `nmlab evaluate`. Handlers import heavy modules lazily.

The `train` options mirror the fields of :class:`rl.td3.Args` (listed here so that
`nmlab --help` never imports torch); tests/test_rl_export.py::test_train_options_mirror_args checks that both agree.
"""

from __future__ import annotations

import argparse
import sys

# (name, type, default, help) of every rl.td3.Args field; test_train_options_mirror_args checks this matches Args.
TRAIN_OPTIONS: list[tuple[str, type, object, str]] = [
    ("env", str, "Hopper-v5", "gymnasium environment id (Box action space)"),
    ("method", str, "", "td3, rnm, rlx2 or gmp; empty: td3 when every layer is dense, else rnm"),
    ("sparsity", str, "dense", "N:M pattern of every layer ('2:4', '1:8'...) or 'dense'; rlx2/gmp: fraction removed (0.9), gmp also N:M"),
    ("actor_sparsity", str, "", "rlx2/gmp: the actor's target sparsity (overrides --sparsity)"),
    ("critic_sparsity", str, "", "rlx2/gmp: both critics' target sparsity (overrides --sparsity)"),
    ("layer_sparsity", str, "", "per-layer overrides, e.g. 'fc1=dense,actor.fc3=dense,critic.fc2=1:4' (td3/rnm; rlx2: dense only)"),
    ("steps", int, 1_000_000, "environment steps to train for (total, also when resuming)"),
    ("seed", int, 0, "seed of torch, numpy, the env and its action space"),
    ("out", str, "runs/td3", "run directory (checkpoint, CSV logs, TensorBoard)"),
    ("hidden", int, 256, "width of the two hidden layers of every MLP"),
    ("learning_rate", float, 3e-4, "Adam learning rate (actor and critics)"),
    ("buffer_size", int, 1_000_000, "replay buffer capacity (transitions)"),
    ("gamma", float, 0.99, "discount factor"),
    ("tau", float, 0.005, "Polyak factor of the target networks"),
    ("batch_size", int, 256, "minibatch size of each gradient update"),
    ("policy_noise", float, 0.2, "std of target policy smoothing noise (x action scale)"),
    ("noise_clip", float, 0.5, "clip of target policy smoothing noise (x action scale)"),
    ("exploration_noise", float, 0.1, "std of Gaussian exploration noise (x action scale)"),
    ("policy_frequency", int, 2, "policy delay: actor and targets update every this many critic updates"),
    ("learning_starts", int, 25_000, "random-action steps before learning starts"),
    ("mask_update_interval", int, 5_000, "gradient updates between N:M re-projections of the online masks"),
    ("srste_decay", float, 2e-4, "SR-STE decay added to the gradient of pruned latent weights"),
    ("straight_through", bool, False, "SR-STE: gradients reach pruned latent weights (else only kept ones)"),
    ("prune_every", int, 1_000, "gmp: environment steps between pruning events"),
    ("prune_distribution", str, "erk", "gmp: per-layer sparsity of a fraction target: erk (small layers keep more) or uniform"),
    ("qat_bits", int, 0, "gmp: quantization-aware training bitwidth for the final phase (0 = no QAT)"),
    ("qat_fraction", float, 0.2, "gmp: fraction of --steps (at the end) trained with QAT when --qat-bits is set"),
    ("rlx2_delta", int, 10_000, "rlx2: optimizer steps of a network (the actor counts its own) between RigL topology updates"),
    ("rlx2_zeta", float, 0.5, "rlx2: RigL drop fraction at the start (cosine-annealed to 0 at T_end)"),
    ("rlx2_t_end", float, 1.0, "rlx2: fraction of the gradient updates after which topologies stay fixed (T_end)"),
    ("rlx2_nstep", int, 3, "rlx2: n of the multi-step TD target"),
    ("rlx2_nstep_start", float, 0.3, "rlx2: multi-step targets from gradient update (this x --steps) on; 1-step before"),
    ("rlx2_buffer_check_every", int, 10_000, "rlx2: environment steps between dynamic-buffer policy-mismatch checks"),
    ("rlx2_buffer_threshold", float, 0.2, "rlx2: drop the oldest 10% of the buffer when the policy mismatch exceeds this"),
    ("rlx2_buffer_min_size", int, 100_000, "rlx2: ... and the buffer holds more than this many transitions"),
    ("eval_every", int, 10_000, "environment steps between deterministic evaluations"),
    ("eval_episodes", int, 10, "episodes per evaluation"),
    ("checkpoint_every", int, 25_000, "environment steps between checkpoints (one is also written at the end)"),
    ("log_every", int, 1_000, "gradient updates between loss log rows"),
    ("tensorboard", bool, True, "write TensorBoard logs under OUT/tb"),
    ("progress", bool, True, "show a progress bar on stderr"),
    ("torch_threads", int, 1, "torch intra-op threads (1 is fastest per core for these small MLPs)"),
    ("device", str, "cpu", "torch device"),
    ("resume", bool, False, "continue the run in OUT from its last checkpoint"),
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
    p.add_argument("--csv", metavar="FILE", default=None, help="append the result to this quality CSV (atomic rewrite)")
    p.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from hwmodel.errors import NmlabError
    from hwmodel.limits import check_output_dir

    given = {name: getattr(args, name) for name, *_ in TRAIN_OPTIONS if getattr(args, name) is not None}
    default_out = next(default for name, _t, default, _h in TRAIN_OPTIONS if name == "out")
    out = check_output_dir(given.get("out", default_out), "--out")  # before torch is even imported
    existed = out.exists()

    from rl import td3

    cfg = td3.Args(**given)
    try:
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
        return 130
    ev, sd = summary["eval_return_mean"], summary["eval_return_std"]
    ev_text = "-" if ev is None else f"{ev:.1f} +- {sd:.1f}"
    print(f"trained {summary['steps']} steps ({summary['steps_this_session']} in this invocation, "
          f"{summary['steps_per_s']:.1f} steps/s); final eval return: {ev_text}; run in {cfg.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from hwmodel.limits import check_output_file

    check_output_file(args.out, "--out")  # before torch is imported
    from rl.export import export_run

    wl = export_run(args.run_dir, args.out, args.episodes)
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

    row = evaluate_run(args.run_dir, args.bits, args.episodes, args.quantize_activations)
    print(f"{row['env']} {row['method']} {row['sparsity']} seed {row['seed']} at {row['steps']} steps, "
          f"{row['bits']}-bit weights{' and activations' if args.quantize_activations else ''}: "
          f"return {row['return_mean']:.1f} +- {row['return_std']:.1f} over {row['episodes']} episodes")
    if args.csv:
        append_quality_row(args.csv, row)
    sys.stdout.flush()
    return 0
