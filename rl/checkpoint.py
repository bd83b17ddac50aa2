"""TD3 checkpoints: one ``checkpoint.pt`` per run directory, loaded with ``weights_only=True``.

The file is a ``torch.save`` of a dict holding only tensors, numpy-free plain types
(int, float, bool, str, None, lists, dicts) and torch state dicts, so loading never runs
code from the file. RNG states of numpy generators are stored as JSON strings (their 128-bit
integers are not plain pickle-safe types everywhere). Format, version 1:

| key | content |
|---|---|
| ``format``, ``version`` | ``"nmlab-td3-checkpoint"``, 1 |
| ``args`` | the run's :class:`rl.td3.Args` as a dict |
| ``global_step``, ``update_step``, ``episode`` | counters (env steps done, gradient updates done, episodes finished) |
| ``actor``, ``qf1``, ``qf2``, ``actor_target``, ``qf1_target``, ``qf2_target`` | state dicts (latent weights, biases, bool masks) |
| ``actor_optimizer``, ``q_optimizer`` | Adam state dicts |
| ``buffer`` | replay buffer (:mod:`rl.replay`): ``obs``, ``next_obs``, ``actions``, ``rewards``, ``dones`` (terminated), ``truncated`` (bool), ``behavior`` (rlx2 only) for the written rows ``[0, filled)``; ``pos``, ``size`` (live transitions), ``filled``. Files without ``truncated`` / ``filled`` (before rl/replay.py) load with no truncation flags and ``filled = size`` |
| ``rng`` | ``torch`` (ByteTensor), ``numpy`` (JSON), ``env`` (JSON), ``action_space`` (JSON); ``cuda`` (ByteTensor, only from a run on a CUDA device: its exploration and target-smoothing noise) |
| ``method_state`` | the method's ``state_dict()`` (rl/methods.py; optional: a checkpoint without it loads ``{}``) |
| ``env_state`` | ``obs``, ``episode_return``, ``episode_length``, ``elapsed_steps``, ``mj_state`` (MuJoCo integration state, float64) or None, ``mj_derived`` (``xpos``, ``xipos``: the body positions Ant-v5 and Humanoid-v5 read before they step, float64; optional: a file without it restores them from the state's kinematics) or None |

Size: the replay buffer dominates: 4 bytes x (2 obs_dim + act_dim + 2) + 1 per stored
transition, i.e. ~21.8 MB for Hopper-v5 and ~33.8 MB for HalfCheetah-v5 at 200k steps
(109 MB / 169 MB at the full 1M buffer; rlx2 adds 4 act_dim bytes per transition). The six
networks (latent weights, biases, a bool mask per layer) and the Adam moments add ~3.8 MB for
Hopper-v5 (2.09 + 1.68 MB: the tensor bytes of ``build_networks``' state dicts and two float32
moments per online parameter; docs/rl.md).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from hwmodel.errors import NmlabError
from hwmodel.io import atomic_write

FORMAT_NAME = "nmlab-td3-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    """Where a run directory keeps its (last) checkpoint."""
    return Path(run_dir) / CHECKPOINT_FILE


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and version) atomically: a crash never leaves half a file."""
    data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **payload}
    with atomic_write(path) as fh:
        torch.save(data, fh)


_NETWORKS = ("actor", "qf1", "qf2", "actor_target", "qf1_target", "qf2_target")


def _check_values(data: dict[str, Any], path: Path) -> None:
    """Refuse non-finite numbers: in ``args`` (a resumed run trains with them) and in the six
    networks (an export or evaluation would carry NaN weights into workloads and returns)."""
    from hwmodel.limits import finite, short

    args = data.get("args")
    if not isinstance(args, dict):
        raise NmlabError(f"checkpoint: {path}: args: must be a mapping")
    for key, value in args.items():
        if isinstance(value, float):
            finite(value, f"checkpoint: {path}: args.{short(key)[1:-1] if isinstance(key, str) else short(key)}")
    for net in _NETWORKS:
        state = data.get(net)
        if not isinstance(state, dict):
            raise NmlabError(f"checkpoint: {path}: {net}: must be a state dict")
        for name, t in state.items():
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise NmlabError(f"checkpoint: {path}: {net}.{short(name)[1:-1]}: holds non-finite values (NaN or inf)")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; any damage is one NmlabError line.

    The sizes its archive declares are checked against the ``checkpoint_bytes`` limit before
    anything is read (docs/limits.md); numbers in its args and networks must be finite.
    """
    from hwmodel.limits import (ZIP_ERRORS, check_limit, check_version, declared_zip_bytes, is_dir, is_file, is_int,
                                not_a_file, short)

    path = Path(path)
    if not is_file(path):
        run = path.parent
        if path.name == CHECKPOINT_FILE and not is_dir(run):
            # `nmlab export runs/h24/checkpoint.pt` or a misspelt run folder said "no such file:
            # runs/h24/checkpoint.pt/checkpoint.pt": name what the user gave instead.
            raise NmlabError(f"checkpoint: {run}: is a file, not a run folder (give the folder nmlab train --out wrote)"
                             if is_file(run) else f"checkpoint: no such run folder: {run}")
        if path.name == CHECKPOINT_FILE:
            # A campaign's or a sweep's folder said "no such file: DIR/checkpoint.pt".
            runs = sorted(p.name for p in run.iterdir() if is_file(p / CHECKPOINT_FILE)) if is_dir(run) else []
            if runs:
                more = ", ..." if len(runs) > 3 else ""
                raise NmlabError(f"checkpoint: {run}: is a folder of runs (a campaign's, say), not a run folder; give "
                                 f"one of them ({', '.join(str(run / r) for r in runs[:3])}{more})")
            if is_file(run / "sweep.json") or is_file(run / "points.parquet"):
                raise NmlabError(f"checkpoint: {run}: is a sweep folder (nmlab sweep --out), not a run folder (give the "
                                 f"folder nmlab train --out wrote)")
        raise not_a_file("checkpoint", path)
    check_limit("checkpoint_bytes", path.stat().st_size, f"checkpoint: {path}: file size")
    declared_zip_bytes(path, "checkpoint", "checkpoint_bytes")
    try:
        is_zip = zipfile.is_zipfile(path)
    except ZIP_ERRORS:  # is_zipfile lets BadZipFile out of a damaged ZIP64 end locator
        is_zip = False
    if not is_zip:
        # torch.save writes a zip archive: anything else fell through to torch's legacy unpickler,
        # whose message (about weights_only defaults) says nothing about a random or cut file.
        raise NmlabError(f"checkpoint: {path} is corrupt or truncated (not the zip archive torch.save writes)")
    try:
        # A damaged file can declare an odd pickle protocol: torch warns before failing, and the
        # user should see one line (the error below), not torch's warning first.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises many types on damaged or hostile bytes
        # (struct.error, pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, ...): all mean a bad file.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NmlabError(f"checkpoint: {path} is corrupt or truncated ({first[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise NmlabError(f"checkpoint: {path}: format: expected {FORMAT_NAME!r}")
    check_version(data.get("version"), (FORMAT_VERSION,), f"checkpoint: {path}: version")
    missing = [k for k in ("args", "global_step", *_NETWORKS) if k not in data]
    if missing:
        raise NmlabError(f"checkpoint: {path}: {missing[0]}: missing")
    for key in ("global_step", "update_step", "episode"):  # the last two: a resume needs them (KeyError there)
        value = data.get(key, 0)
        if not is_int(value) or value < 0:
            raise NmlabError(f"checkpoint: {path}: {key}: must be an integer >= 0, got {short(value)}")
    _check_values(data, path)
    return data
