"""``nmlab evaluate``: return of a trained actor with fake-quantized weights (and activations).

The quality table (``--csv``) has the columns of :data:`QUALITY_COLUMNS`; the sweeps join it
on (env, sparsity, bits), averaging seeds. A run trained with ``--layer-sparsity`` has the
sparsity of its agent label (``2:8 fc1=dense``: :func:`quality_sparsity`). Writing a row replaces any earlier row with the
same (env, method, sparsity, bits, seed), so re-evaluating a longer run of the same seed
never leaves two rows for it; the file is rewritten atomically.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from hwmodel.agents import QUALITY_COLUMNS  # re-exported: the table this module writes
from rl.quant import check_bits, fake_quant_per_channel, fake_quant_per_tensor
_KEY = ("env", "method", "sparsity", "bits", "seed")


class _QuantInput(nn.Module):
    """Wraps a layer so its input is fake-quantized per tensor before the layer runs."""

    def __init__(self, layer: nn.Module, bits: int) -> None:
        super().__init__()
        self.layer, self.bits = layer, bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(fake_quant_per_tensor(x, self.bits))


@torch.no_grad()
def quantize_actor(actor: nn.Module, bits: int, activations: bool = False) -> nn.Module:
    """Fake-quantize the actor's effective (masked) weights in place, per output channel.

    The latent weight becomes the quantized masked weight; zeros stay zero, so the mask and
    N:M pattern are unchanged. Biases stay float32 (they are added in the accumulator).
    A layer trained with QAT starts from its effective weight, which is already on its
    QAT grid (so ``bits`` 32 evaluates the network as trained); its own QAT is then off,
    so the weights are quantized once, at ``bits``.
    With ``activations`` every layer's input (the observation included) is fake-quantized
    per tensor.
    """
    from rl.nm_layers import NMLinear

    for name in ("fc1", "fc2", "fc3"):
        layer = getattr(actor, name)
        w = layer.effective_weight() if isinstance(layer, NMLinear) else layer.weight
        layer.weight.copy_(fake_quant_per_channel(w, bits))
        if isinstance(layer, NMLinear):
            layer.qat_bits = 0
        if activations:
            setattr(actor, name, _QuantInput(layer, bits))
    return actor


def evaluate_run(run_dir: str | os.PathLike, bits: int, episodes: int = 10, activations: bool = False,
                 table: Optional[str] = None) -> dict[str, Any]:
    """Evaluate the run's final actor at ``bits``; returns one quality row (a dict).

    ``table``: the row is for a quality table, named by this ``nmlab evaluate`` option (``--csv``) in the
    error: a gradual-N:M GMP run whose masks are not N:M yet is refused before it is evaluated
    (:func:`rl.export.refuse_pre_nm_rows`): its row would say the N:M target."""
    from rl import td3
    from rl.export import load_run, nm_pending, refuse_pre_nm_rows

    check_bits(bits)
    args, nets, ckpt = load_run(run_dir)
    if table is not None:
        refuse_pre_nm_rows(nm_pending(args, nets, int(ckpt["global_step"]), str(run_dir)), table,
                           f" (nmlab evaluate without {table} prints its return)")
    actor = quantize_actor(nets["actor"], bits, activations)
    rets = td3.evaluate_policy(actor, args.env, episodes, args.seed, seed_offset=args.eval_seed_offset)
    return {
        "env": args.env, "method": td3.method_name(args), "sparsity": quality_sparsity(args),
        "bits": bits, "seed": args.seed, "steps": int(ckpt["global_step"]), "episodes": episodes,
        "return_mean": round(float(np.mean(rets)), 4), "return_std": round(float(np.std(rets)), 4),
    }


def quality_sparsity(args: Any) -> str:
    """The quality table's sparsity of a run: its pattern ("2:4"), RLx2's fractions, gmp's target; a
    TD3 / RNM-TD3 run with per-layer patterns (``--layer-sparsity``) has its agent label, which adds the
    layers that differ ("2:8 fc1=dense", :func:`hwmodel.agents.agent_label`), so its rows neither replace
    nor join those of the plain run of its ``--sparsity``."""
    from hwmodel.agents import agent_label
    from rl import td3
    from rl.methods import make_method

    sparsity, method = make_method(args).sparsity_label(), td3.method_name(args)
    if method in ("rlx2", "gmp"):
        return sparsity
    # The workload meta nmlab export writes for the run (rl/export.py), so its label is this row's sparsity.
    return agent_label({"sparsity": sparsity, "layer_sparsity": args.layer_sparsity}, method, sparsity)


def append_quality_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Add ``row`` to the quality CSV at ``path`` (replacing a row with the same key), atomically."""
    _write_quality_rows(path, [row], stale=False)


def replace_agent_rows(path: str | os.PathLike, new_rows: list[dict[str, Any]]) -> None:
    """Add ``new_rows`` to the quality CSV at ``path`` as :func:`append_quality_row` does, and
    drop every row of the same agent seed (env, method, sparsity, seed) trained for other
    ``steps``, whatever its bits, atomically: a run bundled in place of an earlier one of that
    seed leaves none of the earlier run's rows (at bitwidths the new run was not evaluated at)
    beside its own."""
    _write_quality_rows(path, new_rows, stale=True)


def _write_quality_rows(path: str | os.PathLike, new_rows: list[dict[str, Any]], stale: bool) -> None:
    from hwmodel.agents import check_quality_csv
    from hwmodel.io import atomic_write

    rows = check_quality_csv(path)
    keys = {tuple(str(row[k]) for k in _KEY) for row in new_rows}
    rows = [r for r in rows if tuple(str(r.get(k)) for k in _KEY) not in keys]
    if stale:
        agent = ("env", "method", "sparsity", "seed")
        steps = {tuple(str(row[k]) for k in agent): str(row["steps"]) for row in new_rows}

        def current(r: dict[str, Any]) -> bool:
            own = str(r.get("steps"))
            return steps.get(tuple(str(r.get(k)) for k in agent), own) == own

        rows = [r for r in rows if current(r)]
    rows += list(new_rows)
    rows.sort(key=lambda r: (str(r["env"]), str(r["method"]), str(r["sparsity"]), -int(r["bits"]), int(r["seed"])))
    with atomic_write(path, "w") as fh:
        w = csv.DictWriter(fh, QUALITY_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
