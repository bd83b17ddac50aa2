"""The knobs of ``nmlab train`` (:class:`Args`), in a module that does not import torch.

:mod:`rl.td3` trains with them; ``nmlab train``'s options (:mod:`rl.train_cmd`) and a campaign's
``train:`` keys (:mod:`rl.campaign_config`) are read from these fields, so ``nmlab --help`` and
a config check never import torch, and a knob is written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Args:
    """Every knob of a TD3 / RNM-TD3 run. Field metadata ``help`` becomes the CLI help."""

    env: str = field(default="Hopper-v5", metadata={"help": "gymnasium environment id (Box action space)"})
    method: str = field(default="", metadata={"help": "td3, rnm, rlx2 or gmp; empty: td3 when every layer is dense, else rnm"})
    sparsity: str = field(default="dense", metadata={"help": "N:M pattern of every layer ('2:4', '1:8'...) or 'dense'; rlx2/gmp: fraction removed (0.9), gmp also N:M"})
    actor_sparsity: str = field(default="", metadata={"help": "rlx2/gmp: the actor's target sparsity (overrides --sparsity)"})
    critic_sparsity: str = field(default="", metadata={"help": "rlx2/gmp: both critics' target sparsity (overrides --sparsity)"})
    layer_sparsity: str = field(default="", metadata={"help": "per-layer overrides, e.g. 'fc1=dense,actor.fc3=dense,critic.fc2=1:4' (td3/rnm; rlx2: dense only)"})
    steps: int = field(default=1_000_000, metadata={"help": "environment steps to train for (total, also when resuming)"})
    seed: int = field(default=0, metadata={"help": "seed of torch, numpy, the env and its action space"})
    out: str = field(default="runs/td3", metadata={"help": "run directory (checkpoint, CSV logs, TensorBoard)"})
    hidden: int = field(default=256, metadata={"help": "width of the two hidden layers of every MLP"})
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam learning rate (actor and critics)"})
    buffer_size: int = field(default=1_000_000, metadata={"help": "replay buffer capacity (transitions)"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    tau: float = field(default=0.005, metadata={"help": "Polyak factor of the target networks"})
    batch_size: int = field(default=256, metadata={"help": "minibatch size of each gradient update"})
    policy_noise: float = field(default=0.2, metadata={"help": "std of target policy smoothing noise (x action scale)"})
    noise_clip: float = field(default=0.5, metadata={"help": "clip of target policy smoothing noise (x action scale)"})
    exploration_noise: float = field(default=0.1, metadata={"help": "std of Gaussian exploration noise (x action scale)"})
    policy_frequency: int = field(default=2, metadata={"help": "policy delay: actor and targets update every this many critic updates"})
    learning_starts: int = field(default=25_000, metadata={"help": "random-action steps before learning starts"})
    mask_update_interval: int = field(default=5_000, metadata={"help": "gradient updates between N:M re-projections of the online masks"})
    srste_decay: float = field(default=2e-4, metadata={"help": "SR-STE decay added to the gradient of pruned latent weights"})
    straight_through: bool = field(default=False, metadata={"help": "SR-STE: gradients reach pruned latent weights (else only kept ones)"})
    prune_every: int = field(default=1_000, metadata={"help": "gmp: environment steps between pruning events"})
    prune_distribution: str = field(default="erk", metadata={"help": "gmp: per-layer sparsity of a fraction target: erk (small layers keep more) or uniform"})
    prune_start_fraction: float = field(default=0.2, metadata={"help": "gmp: first pruning step t_s as a fraction of the pruning phase (--steps less the QAT phase), rounded to a multiple of --prune-every; Zhu & Gupta's schedule as in Graesser et al.: 0.2"})
    prune_end_fraction: float = field(default=0.8, metadata={"help": "gmp: pruning step t_e at which the final sparsity is reached, as a fraction of the pruning phase, rounded likewise; Graesser et al.: 0.8"})
    qat_bits: int = field(default=0, metadata={"help": "gmp: quantization-aware training bitwidth for the final phase (0 = no QAT)"})
    qat_fraction: float = field(default=0.2, metadata={"help": "gmp: fraction of --steps (at the end) trained with QAT when --qat-bits is set"})
    rlx2_delta: int = field(default=10_000, metadata={"help": "rlx2: optimizer steps of a network (the actor counts its own) between RigL topology updates"})
    rlx2_zeta: float = field(default=0.5, metadata={"help": "rlx2: RigL drop fraction at the start (cosine-annealed to 0 at T_end)"})
    rlx2_t_end: float = field(default=1.0, metadata={"help": "rlx2: fraction of the gradient updates after which topologies stay fixed (T_end)"})
    rlx2_nstep: int = field(default=3, metadata={"help": "rlx2: n of the multi-step TD target"})
    rlx2_nstep_start: float = field(default=0.3, metadata={"help": "rlx2: multi-step targets from gradient update (this x --steps) on; 1-step before"})
    rlx2_buffer_check_every: int = field(default=10_000, metadata={"help": "rlx2: environment steps between dynamic-buffer policy-mismatch checks"})
    rlx2_buffer_threshold: float = field(default=0.2, metadata={"help": "rlx2: shrink the buffer (--rlx2-buffer-drop-fraction) when the policy mismatch exceeds this"})
    rlx2_buffer_min_size: int = field(default=100_000, metadata={"help": "rlx2: ... and the buffer holds more than this many transitions"})
    rlx2_buffer_drop_fraction: float = field(default=0.1, metadata={"help": "rlx2: fraction of the live transitions dropped when the buffer shrinks, the oldest first; RLx2: 0.1 (10%)"})
    rlx2_mismatch_samples: int = field(default=2048, metadata={"help": "rlx2: oldest transitions the policy mismatch is measured on; RLx2: 2048 (8 x batch size 256 in the authors' code)"})
    eval_every: int = field(default=10_000, metadata={"help": "environment steps between deterministic evaluations"})
    eval_episodes: int = field(default=10, metadata={"help": "episodes per evaluation"})
    eval_seed_offset: int = field(default=100_000, metadata={"help": "evaluation episode i resets its env with --seed + this + i: the same start states at every evaluation, apart from the training episodes' seeds"})
    checkpoint_every: int = field(default=25_000, metadata={"help": "environment steps between checkpoints (one is also written at the end)"})
    log_every: int = field(default=1_000, metadata={"help": "gradient updates between loss log rows"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard logs under OUT/tb"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar on stderr"})
    torch_threads: int = field(default=1, metadata={"help": "torch intra-op threads (1 is fastest per core for these small MLPs)"})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    resume: bool = field(default=False, metadata={"help": "continue the run in OUT from its last checkpoint"})

