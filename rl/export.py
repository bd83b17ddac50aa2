"""``nmlab export``: a trained run's six networks -> workload file (docs/workload.md).

Layers are named ``<network>.fc1..fc3`` with networks ``actor``, ``critic1``, ``critic2``,
``actor_target``, ``critic1_target``, ``critic2_target``; each carries its real mask (the
one its forward pass uses), the weight it computes with and its bias.

* Pattern: the layer's own ("N:M", "dense", or "unstructured" for GMP / RLx2 masks). A
  gradual-N:M GMP layer exported before its schedule ended (its mask is not N:M yet) is
  written as "unstructured" with its real mask.
* Weights: the effective weight of the forward pass, i.e. masked and, for a layer training
  with QAT, fake-quantized (float32 values on the per-channel integer grid). ``weight_bits``
  is the QAT bitwidth for such layers, else 32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from hwmodel.errors import NmlabError
from hwmodel.workload import Layer, Workload, save_workload
from rl.methods import make_method


def load_run(run_dir: str | os.PathLike) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(Args, networks by checkpoint key, checkpoint dict) of the run in ``run_dir``, on CPU."""
    from rl import td3
    from rl.checkpoint import checkpoint_path, load_checkpoint

    ckpt = load_checkpoint(checkpoint_path(run_dir))
    known = {f.name for f in td3.dataclasses.fields(td3.Args)}
    args = td3.Args(**{k: v for k, v in ckpt["args"].items() if k in known})
    args.device = "cpu"
    try:
        td3.validate_args(args)  # the checkpoint's args, checked as nmlab train checks them
    except NmlabError as exc:
        raise NmlabError(f"checkpoint: {checkpoint_path(run_dir)}: args: {exc}") from None
    env = td3.make_env(args.env)
    try:
        obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    finally:
        env.close()
    method = make_method(args)
    nets = td3.build_networks(args, obs_dim, act_dim, low, high, method)
    try:
        for name, net in nets.items():
            net.load_state_dict(ckpt[name])
            net.eval()
    except (KeyError, RuntimeError) as exc:
        raise NmlabError(f"checkpoint: {run_dir}: networks do not match their args ({str(exc).splitlines()[0][:160]})") from None
    method.prepare(nets, int(ckpt["global_step"]))  # QAT bits of the run at that step
    return args, nets, ckpt


def final_eval(run_dir: str | os.PathLike, step: int) -> Optional[tuple[float, float]]:
    """(mean, std) of the run's evaluation at ``step`` from eval.csv, or None."""
    from hwmodel.limits import parse_finite, parse_int, read_csv

    path = Path(run_dir) / "eval.csv"
    if not path.is_file():
        return None
    _header, rows = read_csv(path, "eval log", required=("step", "return_mean", "return_std"))
    last = [(i, r) for i, r in rows if parse_int(r["step"], f"eval log {path}: line {i}: step") == step]
    if not last:
        return None
    i, r = last[-1]
    where = f"eval log {path}: line {i}"
    return (parse_finite(r["return_mean"], f"{where}: return_mean"), parse_finite(r["return_std"], f"{where}: return_std"))


def nm_pending(args: Any, nets: dict[str, Any], step: int, run: str) -> Optional[tuple[str, str, int]]:
    """Where a gradual-N:M GMP run is at a step before its masks are N:M (its schedule's end):
    (``"RUN is gmp 2:4 at step 250, before its masks are 2:4 (its schedule reaches 2:4 at step 500)"``,
    the N:M label, the schedule's end step); None for any other run or step. Its export is
    unstructured, and its return is not yet the N:M agent's."""
    from hwmodel.sparsity import verify
    from rl.nm_layers import nm_layers

    method = make_method(args)
    label = method.sparsity_label()
    if not hasattr(method, "schedule") or ":" not in label:
        return None
    if all(verify(lin.mask.numpy(), lin.pattern) is None for net in nets.values() for lin in nm_layers(net)
           if lin.sparse and lin.pattern.is_nm):
        return None
    end = method.schedule.t_end
    return (f"{run} is gmp {label} at step {step}, before its masks are {label} (its schedule reaches "
            f"{label} at step {end})", label, end)


def export_note(where: str, label: str, end: int) -> str:
    """The note ``nmlab export`` prints for a run of :func:`nm_pending` (its three parts)."""
    return (f"note: {where}: its workload is unstructured and no quality row is its return (nmlab evaluate "
            f"--csv writes none before step {end}), so a sweep joins no return to it; export and evaluate it "
            f"from step {end} on to compare it as {label}")


def return_note(where: str, label: str, end: int) -> str:
    """The note ``nmlab evaluate`` (no ``--csv``) prints for a run of :func:`nm_pending` (its three parts)."""
    return (f"note: {where}: this return is not yet the {label} agent's (nmlab evaluate --csv writes no row "
            f"for it before step {end})")


def refuse_pre_nm_rows(pending: Optional[tuple[str, str, int]], field: str, instead: str = "") -> None:
    """NmlabError naming ``field`` where the run is one of :func:`nm_pending` (``pending``, its answer): its
    quality rows would say the N:M target (``2:4``), and a sweep would average them with the rows of that
    agent's finished seeds, though its masks are not N:M yet. ``instead``: what else the user may do,
    ending the line."""
    if pending is not None:
        where, label, end = pending
        raise NmlabError(f"{field}: {where}: its return is not yet the {label} agent's, and a sweep would average "
                         f"it with other seeds' {label} rows, so no quality row is written for it before step "
                         f"{end}{instead}")


def build_workload(run_dir: str | os.PathLike, episodes: Optional[int] = None) -> Workload:
    """The workload of the run in ``run_dir``. The evaluation return comes from eval.csv at the
    checkpoint's step; if that row is missing the actor is evaluated now (``episodes``)."""
    import torch

    from hwmodel.sparsity import verify
    from rl import td3
    from rl.nm_layers import nm_layers

    args, nets, ckpt = load_run(run_dir)
    method = make_method(args)
    step = int(ckpt["global_step"])
    ev = final_eval(run_dir, step)
    if ev is None:
        rets = td3.evaluate_policy(nets["actor"], args.env, episodes or args.eval_episodes, args.seed,
                                   seed_offset=args.eval_seed_offset)
        ev = (float(np.mean(rets)), float(np.std(rets)))
    layers = []
    for key, network in td3.NETWORK_EXPORT_NAMES.items():
        for i, lin in enumerate(nm_layers(nets[key])):
            with torch.no_grad():
                weight = lin.effective_weight().numpy()
            mask = lin.mask.numpy().copy() if lin.sparse else None
            pattern = str(lin.pattern)
            if lin.pattern.is_nm and verify(mask, lin.pattern) is not None:
                pattern = "unstructured"  # gradual N:M before its schedule ended
            layers.append(Layer(
                name=f"{network}.fc{i + 1}", network=network, in_features=lin.in_features, out_features=lin.out_features,
                pattern=pattern, mask=mask, weight_bits=lin.qat_bits or 32,
                weight=weight.astype(np.float32), bias=lin.bias.detach().numpy().astype(np.float32),
            ))
    meta = {
        "env": args.env, "method": td3.method_name(args), "sparsity": method.sparsity_label(),
        "layer_sparsity": args.layer_sparsity, "steps": step, "seed": args.seed,
        "eval_return_mean": round(ev[0], 4), "eval_return_std": round(ev[1], 4),
        "source": "nmlab train", "run": Path(run_dir).name,
    }
    if hasattr(method, "target_text"):  # rlx2 / gmp: the per-network targets
        meta["actor_sparsity"], meta["critic_sparsity"] = method.target_text("actor"), method.target_text("critic")
    if args.qat_bits:
        meta["qat_bits"], meta["qat_fraction"] = args.qat_bits, args.qat_fraction
    return Workload(layers=layers, meta=meta)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, episodes: Optional[int] = None) -> Workload:
    """Write the workload of ``run_dir`` to ``out`` (atomic) and return it."""
    wl = build_workload(run_dir, episodes)
    save_workload(wl, out)
    return wl


def run_pending(run_dir: str | os.PathLike) -> Optional[tuple[str, str, int]]:
    """:func:`nm_pending` of the run in ``run_dir`` at its checkpoint."""
    args, nets, ckpt = load_run(run_dir)
    return nm_pending(args, nets, int(ckpt["global_step"]), str(run_dir))
