"""Campaign configuration (``nmlab campaign CONFIG.yaml``): format, validation and the run list.

Format, version 1 (YAML, read with ``yaml.safe_load``)::

    version: 1
    envs: [Hopper-v5, HalfCheetah-v5]
    agents: [dense, "2:4", "1:4", "1:8", rlx2, gmp]   # labels as in the results tables
    seeds: [0, 1]
    steps: 200000
    train: {learning_starts: 25000}                  # any `nmlab train` option, for every run
    # optional:
    quality_bits: [32, 16, 8, 4]    # weight bitwidths of each finished run's quality rows
    quality_episodes: 10            # episodes per quality row
    gpus_per_run: 0.25              # GPU share of a run when train: {device: cuda}
    max_retries: 3                  # Ray retries of a run whose worker or node died

Agents: ``dense`` (TD3), an N:M pattern (RNM-TD3: ``"2:4"``, quoted, since YAML reads
2:4 as a base-60 integer), ``rlx2`` (the paper's per-env actor/critic sparsity, 0.9/0.9 on an env
the paper did not run; topology interval 2000) or ``gmp`` (90% gradual magnitude pruning,
then 8-bit QAT). ``train:`` keys
are ``nmlab train`` options (``learning_starts`` or ``learning-starts``) except those the
campaign sets per run (env, seed, steps, out, resume, method, sparsity); they override the
agent's own options (e.g. ``rlx2_delta``). One run = (env, agent, seed), trained in
``OUT/<env>_<agent>_s<seed>`` (``hopper_2of4_s0``).

Every key is checked, and every run's full ``nmlab train`` configuration validated, before
anything starts: a bad config is one :class:`~hwmodel.errors.NmlabError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwmodel.errors import NmlabError
from hwmodel.limits import is_int, other_kind

#: The config format version this module reads.
VERSION = 1
#: Method labels besides dense and N:M patterns (as in the results tables).
METHOD_LABELS = ("rlx2", "gmp")
#: RLx2's per-env (actor, critic) sparsities (Tan et al. 2023, TD3 table; shared/reference/rl.md): the four
#: envs of the paper, the labels of hwmodel/data/workloads/published_returns.csv's rlx2 rows. Other envs: 0.9/0.9.
RLX2_SPARSITY = {"Hopper-v5": ("0.98", "0.95"), "HalfCheetah-v5": ("0.9", "0.85"), "Walker2d-v5": ("0.97", "0.95"),
                 "Ant-v5": ("0.96", "0.88")}
#: ``nmlab train`` options the campaign sets itself for every run.
RESERVED_TRAIN = ("env", "seed", "steps", "out", "resume", "method", "sparsity")
#: Keys of a config file: required, then optional with their defaults.
REQUIRED = ("version", "envs", "agents", "seeds", "steps")
OPTIONAL: dict[str, Any] = {"train": {}, "quality_bits": [32, 16, 8, 4], "quality_episodes": 10,
                            "gpus_per_run": 0.25, "max_retries": 3}


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign.

    Args:
        env: gymnasium id.
        agent: the agent label (``dense``, ``2:4``, ``rlx2``, ``gmp``).
        seed: training seed.
        name: folder name under the campaign's ``--out``.
        train: every ``nmlab train`` option of the run except ``out`` and ``resume``.
    """

    env: str
    agent: str
    seed: int
    name: str
    train: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class CampaignConfig:
    """A validated campaign file (see the module doc for each field)."""

    envs: list[str]
    agents: list[str]
    seeds: list[int]
    steps: int
    train: dict[str, Any]
    quality_bits: list[int]
    quality_episodes: int
    gpus_per_run: float
    max_retries: int

    def runs(self) -> list[RunSpec]:
        """Every (env, agent, seed), seed-major so each seed's whole grid finishes before the next."""
        out = []
        for seed in self.seeds:
            for env in self.envs:
                for agent in self.agents:
                    opts = {"env": env, "seed": seed, "steps": self.steps, **agent_options(env, agent), **self.train}
                    out.append(RunSpec(env, agent, seed, run_name(env, agent, seed), opts))
        return out

    @property
    def on_gpu(self) -> bool:
        """True when the runs train on a CUDA device (each task then asks Ray for a GPU share)."""
        return str(self.train.get("device", "cpu")).startswith("cuda")


def run_name(env: str, agent: str, seed: int) -> str:
    """``hopper_2of4_s0``: env without its version, agent (':' -> 'of'), seed."""
    return f"{env.split('-v')[0].lower()}_{agent.replace(':', 'of')}_s{seed}"


def agent_options(env: str, agent: str) -> dict[str, Any]:
    """The ``nmlab train`` options that select an agent's method and sparsity."""
    if agent == "rlx2":
        actor, critic = RLX2_SPARSITY.get(env, ("0.9", "0.9"))
        return {"method": "rlx2", "sparsity": critic, "actor_sparsity": actor, "critic_sparsity": critic, "rlx2_delta": 2000}
    if agent == "gmp":
        return {"method": "gmp", "sparsity": "0.9", "qat_bits": 8}
    return {"sparsity": agent}


def _fail(path: str, key: str, why: str) -> NmlabError:
    # "campaign config: <file>: <key>: ...", as the file's own errors (size, YAML) and the other
    # config readers ("sweep config: ...", "design: <file>: ...") begin.
    return NmlabError(f"campaign config: {path}: {key}: {why}")


def _list(raw: dict, key: str, path: str) -> list:
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise _fail(path, key, f"must be a non-empty list, got {value!r}")
    if len({repr(v) for v in value}) != len(value):
        raise _fail(path, key, f"lists {next(v for i, v in enumerate(value) if v in value[:i])!r} twice")
    return value


def _agent(value: Any, where: str, path: str) -> str:
    from hwmodel.sparsity import parse_pattern

    if is_int(value):
        raise _fail(path, where, f"{value!r} is a number: quote N:M labels (\"2:4\"), YAML reads 2:4 as a base-60 integer")
    if not isinstance(value, str):
        raise _fail(path, where, f"must be a label (dense, \"2:4\", rlx2, gmp), got {value!r}")
    label = value.strip().lower()
    if label in METHOD_LABELS or label == "dense":
        return label
    try:
        pattern = parse_pattern(label, field=where, allow_unstructured=False)
    except NmlabError:
        pattern = None
    if pattern is None or not pattern.is_nm:
        raise _fail(path, where, f"{value!r} is not an agent label: dense, an N:M pattern (\"2:4\"), rlx2 or gmp")
    return str(pattern)


def _train_options(raw: Any, path: str) -> dict[str, Any]:
    """``train:`` as {option: value}, each name and type checked against ``nmlab train``."""
    from rl.train_cmd import TRAIN_OPTIONS

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(path, "train", f"must be a mapping of nmlab train options, got {raw!r}")
    names = {name for name, *_ in TRAIN_OPTIONS}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        where = f"train.{key}"
        if name not in names:
            raise _fail(path, where, "not an nmlab train option")
        if name in RESERVED_TRAIN:
            raise _fail(path, where, "set by the campaign for each run (envs, agents, seeds, steps, --out)")
        out[name] = _checked(name, value, where, path)
    return out


def _checked(name: str, value: Any, where: str, path: str) -> Any:
    """``value`` of train option ``name`` checked as ``nmlab train`` checks it (type, bounds)."""
    from rl.train_cmd import check_option

    try:
        return check_option(name, value)
    except NmlabError as exc:
        raise _fail(path, where, str(exc).split(": ", 1)[1]) from None


def parse_config(raw: Any, path: str = "config") -> CampaignConfig:
    """Validate a loaded config mapping; ``path`` names the file in errors."""
    if not isinstance(raw, dict):
        raise NmlabError(f"campaign config: {path}: must be a YAML mapping with keys {', '.join(REQUIRED)}")
    for key in raw:
        if key not in REQUIRED and key not in OPTIONAL:
            raise _fail(path, str(key), f"unknown key (known: {', '.join((*REQUIRED, *OPTIONAL))})"
                                        f"{other_kind(raw, 'a campaign config')}")
    for key in REQUIRED:
        if key not in raw:
            raise _fail(path, key, "missing")
    if raw["version"] != VERSION:
        raise _fail(path, "version", f"this nmlab reads version {VERSION}, got {raw['version']!r}")
    envs = _list(raw, "envs", path)
    for i, env in enumerate(envs):
        if not isinstance(env, str):
            raise _fail(path, f"envs[{i}]", f"must be a gymnasium id, got {env!r}")
    agents = [_agent(a, f"agents[{i}]", path) for i, a in enumerate(_list(raw, "agents", path))]
    if len(set(agents)) != len(agents):
        raise _fail(path, "agents", "lists one agent twice")
    seeds = _list(raw, "seeds", path)
    for i, seed in enumerate(seeds):
        _checked("seed", seed, f"seeds[{i}]", path)
    steps = _checked("steps", raw["steps"], "steps", path)
    if steps < 1:
        raise _fail(path, "steps", f"must be a positive integer, got {steps!r}")
    opt = {**OPTIONAL, **{k: v for k, v in raw.items() if k in OPTIONAL}}
    bits = opt["quality_bits"]
    if not isinstance(bits, list) or not all(is_int(b) and 2 <= b <= 32 for b in bits):
        raise _fail(path, "quality_bits", f"must be a list of bitwidths from 2 to 32, got {bits!r}")
    for key, low in (("quality_episodes", 1), ("max_retries", 0)):
        if not is_int(opt[key]) or opt[key] < low:
            raise _fail(path, key, f"must be an integer >= {low}, got {opt[key]!r}")
    gpus = opt["gpus_per_run"]
    if not (is_int(gpus) or isinstance(gpus, float)) or not 0 < gpus <= 1:
        raise _fail(path, "gpus_per_run", f"must be a number in (0, 1], got {gpus!r}")
    cfg = CampaignConfig(envs=list(envs), agents=agents, seeds=list(seeds), steps=steps,
                         train=_train_options(opt["train"], path), quality_bits=list(bits),
                         quality_episodes=opt["quality_episodes"], gpus_per_run=float(gpus), max_retries=opt["max_retries"])
    _validate_runs(cfg, path)
    return cfg


def _validate_runs(cfg: CampaignConfig, path: str) -> None:
    """Every run's ``nmlab train`` configuration, as ``nmlab train`` itself would check it."""
    import gymnasium as gym

    from rl import td3

    for i, env in enumerate(cfg.envs):
        if env not in gym.envs.registry:
            raise _fail(path, f"envs[{i}]", f"{env!r} is not a registered gymnasium environment")
    for run in cfg.runs():
        # CUDA is checked where a run trains (a cluster's workers), not on this machine.
        opts = {**run.train, "device": "cpu"} if cfg.on_gpu else run.train
        try:
            td3.validate_args(td3.Args(**opts))
        except NmlabError as exc:
            key = str(exc).split(":", 1)[0]
            where = f"train.{key}" if key in cfg.train else f"agents ({run.agent} on {run.env})"
            raise _fail(path, where, str(exc)) from None
    _check_checkpoint_sizes(cfg, path)


def _check_checkpoint_sizes(cfg: CampaignConfig, path: str) -> None:
    """Refuse, before any run starts, a campaign whose runs' checkpoints would outgrow the
    ``checkpoint_bytes`` limit (Humanoid-v5 at the default 1M buffer): each such run would be refused
    at its start (``rl.td3.check_checkpoint_size``) while the others train. Same estimate as
    ``nmlab train``'s; the largest ``buffer_size`` given fits every agent of the env (rlx2's rows are
    the largest: they keep the behaviour actions)."""
    from hwmodel.limits import LIMITS

    from rl import td3

    runs = cfg.runs()
    for i, env_id in enumerate(cfg.envs):
        try:
            env = td3.make_env(env_id)
        except NmlabError:
            continue  # this machine cannot build it (a cluster's workers may): each run checks itself as it starts
        obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
        env.close()
        over = [(size, run, args) for run in runs if run.env == env_id
                and (size := td3.checkpoint_size(args := td3.Args(**run.train), obs_dim, act_dim)) is not None]
        if not over:
            continue
        (need, cap, nets, row, rows, _), run, args = max(over, key=lambda o: o[0][0])
        fits = min(size[5] for size, _, _ in over)
        env_var = (f"set {LIMITS['checkpoint_bytes'].env} to {need} or more for the campaign and every command that "
                   f"reads its runs (docs/limits.md)")
        if fits < 1:
            raise _fail(path, "train.hidden" if "hidden" in cfg.train else f"envs[{i}]",
                        f"a {env_id} checkpoint's networks and Adam moments at hidden {args.hidden} "
                        f"take about {nets:,} bytes, over the limit of {cap:,} that resume, export and evaluate read a "
                        f"checkpoint under; set a smaller train: {{hidden: ...}}, or {env_var}")
        raise _fail(path, "train.buffer_size" if "buffer_size" in cfg.train else f"envs[{i}]",
                    f"a {env_id} checkpoint ({run.agent}) keeps {rows:,} transitions of {row:,} bytes, about {need:,} "
                    f"bytes in all, over the limit of {cap:,} that resume, export and evaluate read a checkpoint under; "
                    f"set train: {{buffer_size: {fits}}} or less in the config, or {env_var}")


def load_config(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign file (``yaml.safe_load``: nothing in it is executed), with the
    bounds every nmlab YAML input gets (``hwmodel.limits.load_yaml``: file size, nesting, alias
    expansion, duplicate keys)."""
    from hwmodel.limits import load_yaml

    p = Path(path)
    raw = load_yaml(p, "campaign config")
    return parse_config(raw, str(p))
