"""ExperimentConfig: every number the two world models share (only the backbone differs), saved
inside every checkpoint and compared on load."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields

import torch


@dataclass(frozen=True)
class ExperimentConfig:
    # --- environment and data -------------------------------------------------------------
    env_id: str = "ALE/Boxing-v5"
    frame_size: int = 64  # frames are frame_size x frame_size RGB uint8
    frameskip: int = 4
    env_steps: int = 50_000  # random-policy steps collected (all streams together)
    collect_streams: int = 2  # independent env copies, seeds seed+i; fixed so data never depends on core count
    val_episodes: int = 4  # the last episodes: ~390 non-overlapping evaluation windows (README)
    seed: int = 0  # the DATA seed: env streams, the split, the validation and evaluation windows
    train_seed: int = 0  # initialisation, batch order, sampling, dropout: varied alone by `seeds`

    # --- shared observation model and latent (identical for both world models) -----------
    conv_widths: tuple[int, ...] = (16, 32, 64, 128)
    latent_vars: int = 32  # 32 categorical variables ...
    latent_classes: int = 32  # ... with 32 classes each = one 1024-dim one-hot token per frame
    unimix: float = 0.01  # 1% uniform mixed into every categorical (DreamerV3)
    free_bits: float = 1.0  # nats, per time step
    kl_dyn_scale: float = 0.5  # dynamics (prior / token-prediction) KL weight
    kl_rep_scale: float = 0.1  # representation KL weight
    hidden: int = 256  # width of the small MLP heads

    # --- the two dynamics backbones ---------------------------------------------------------
    tf_layers: int = 4  # 4 x 128: dynamics parameters within 10 % of the RSSM's (README)
    tf_dim: int = 128
    tf_heads: int = 4
    tf_dropout: float = 0.1
    rssm_deter: int = 256

    # --- the shared training budget ---------------------------------------------------------
    batch_size: int = 16
    seq_len: int = 16  # >= 2: the dynamics loss pairs the prediction made at a_t with z_{t+1}
    train_steps: int = 1_750  # for both models: fits the 15-minute CPU notebook (README)
    lr: float = 1e-3
    adam_eps: float = 1e-8
    grad_clip: float = 1000.0
    log_every: int = 250  # validation + history record every this many steps
    val_windows: int = 64  # fixed validation windows for the validation loss / neutral metric

    # --- evaluation -------------------------------------------------------------------------
    context: int = 8
    horizon: int = 10
    eval_windows: int = 512  # at most this many non-overlapping windows (4 episodes give ~396)
    eval_samples: int = 4  # sampled rollouts averaged beside the mode rollout
    changed_threshold: float = 8 / 255  # a pixel "changed" if it differs from the last context frame by more
    sweep_seq_lens: tuple[int, ...] = (16, 64, 256, 1024)  # attention-cost sweep (time steps)

    # --- machine ------------------------------------------------------------------------------
    device: str = "auto"  # "auto": CUDA, then MPS, then CPU
    amp: str = "auto"  # "auto" | "off": fp32; "bf16": autocast on the convs (device.BF16_FINDING)
    data_dir: str = "data"
    checkpoint_dir: str = "checkpoints"
    smoke_mode: bool = field(default=False)

    def __post_init__(self):
        problems = []
        if self.frame_size != 64:
            problems.append(f"frame_size={self.frame_size}: the conv stack is built for 64x64 frames")
        if len(self.conv_widths) != 4:
            problems.append(f"conv_widths={self.conv_widths}: need 4 widths (64 -> 4 pixels in 4 stride-2 convs)")
        if self.context < 2:
            problems.append(f"context={self.context}: need at least 2 real frames")
        for name in ("tf_heads", "val_episodes", "collect_streams", "tf_layers", "env_steps", "batch_size",
                     "train_steps", "log_every", "horizon", "eval_windows"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        if self.tf_heads >= 1 and self.tf_dim % self.tf_heads:
            problems.append(f"tf_dim={self.tf_dim} is not divisible by tf_heads={self.tf_heads}")
        if self.amp not in ("auto", "bf16", "off"):
            problems.append(f"amp={self.amp!r}: choose 'auto', 'bf16' or 'off'")
        if self.seq_len < 2:  # the dynamics loss pairs the prediction made at step t with z_{t+1}
            problems.append(f"seq_len={self.seq_len}: need at least 2 steps")
        if problems:
            raise ValueError("Bad ExperimentConfig: " + "; ".join(problems))

    @classmethod
    def smoke(cls, **overrides) -> "ExperimentConfig":
        """Tiny budgets so CI can run every notebook cell in a couple of minutes."""
        small = dict(
            env_steps=1_000, val_episodes=1, train_steps=20, log_every=10, val_windows=8,
            eval_windows=16, eval_samples=2, sweep_seq_lens=(16, 32), smoke_mode=True,
            checkpoint_dir="checkpoints/smoke",  # never overwrite the shipped full-budget checkpoints
        )
        small.update(overrides)
        return cls(**small)

    @classmethod
    def gpu(cls, **overrides) -> "ExperimentConfig":
        """The CUDA preset: the CPU default with 3,000 steps (sized for a Colab T4 in 10 minutes: README)."""
        # its own folder: a GPU-budget checkpoint must never replace the shipped CPU-budget ones
        return cls(**{"train_steps": 3_000, "checkpoint_dir": "checkpoints/gpu", **overrides})

    @classmethod
    def from_env(cls, **overrides) -> "ExperimentConfig":
        """WM_SMOKE=1 -> the smoke config; on a CUDA device -> the GPU preset; else the CPU default.

        WM_PRESET=cpu forces the CPU default on a GPU machine (to reproduce the shipped numbers)."""
        if os.environ.get("WM_SMOKE", "0").strip().lower() in ("1", "true", "yes"):
            return cls.smoke(**overrides)
        preset = os.environ.get("WM_PRESET", "auto").strip().lower()
        if preset not in ("auto", "cpu", "gpu"):
            raise ValueError(f"WM_PRESET={preset!r}: choose 'auto', 'cpu' or 'gpu'")
        if preset == "gpu" or (preset == "auto" and cls(**overrides).resolve_device().type == "cuda"):
            return cls.gpu(**overrides)
        return cls(**overrides)

    @property
    def preset(self) -> str:
        """Which budget this is, for the device line and the conclusion: "smoke", "gpu", "cpu" or "custom"."""
        if self.smoke_mode:
            return "smoke"
        if self.train_steps == type(self).gpu().train_steps:
            return "gpu"
        return "cpu" if self.train_steps == type(self)().train_steps else "custom"

    def replace(self, **changes) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON types only (tuples become lists), so it can live in a weights_only checkpoint."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        """The inverse of `to_dict` (lists become tuples again)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def resolve_device(self) -> torch.device:
        """device="auto": CUDA, then MPS if it passed its self-check (one training step and one
        imagination step, finite and close to the CPU's: device.mps_refusal; a refusal is printed
        once and shown on the device line), then the CPU. Any other value is used as given."""
        if self.device != "auto":
            return torch.device(self.device)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            from .device import mps_refusal

            if mps_refusal() is None:
                return torch.device("mps")
        return torch.device("cpu")

    @property
    def precision(self) -> str:
        """"fp32" or "bf16": what a model trained with this config trains in, on any device."""
        from .device import precision_of

        return precision_of(self.amp)


# Fields that size ONE backbone: a checkpoint is not compared on the other kinds' (changing tf_layers
# must not force the P03 baseline to be retrained; tests/test_run_integrity.py checks this).
BACKBONE_FIELDS = {
    "transformer": ("tf_layers", "tf_dim", "tf_heads", "tf_dropout"),
    "rssm": ("rssm_deter",),
}


def fields_that_shape(kind: str) -> set[str]:
    """The ExperimentConfig fields a checkpoint of `kind` is compared on (by exclusion, so a new
    field is compared unless it is declared run environment or another backbone's)."""
    others = {f for k, names in BACKBONE_FIELDS.items() if k != kind for f in names}
    return {f.name for f in fields(ExperimentConfig)} - set(RUN_ENVIRONMENT_FIELDS) - others


# Where and how a run happens, not what is trained, each with why: every other field is compared on
# load (checkpoints.checkpoint_mismatches), so a new field is compared by default.
RUN_ENVIRONMENT_FIELDS = {
    "device": "the same model on another device (wall clock is recorded separately, with the device)",
    "amp": "compared as the precision it trains in (config.precision: 'auto' and 'off' are both fp32)",
    "data_dir": "where the cache lives; the data themselves are checked by their fingerprint",
    "checkpoint_dir": "where files are written",
    "smoke_mode": "a label; the smoke budgets themselves are compared field by field",
    "log_every": "how often validation is recorded; validation never touches the training RNG",
    "val_windows": "how many windows the validation curve averages; not used by training",
    "context": "evaluation protocol, applied after training",
    "horizon": "evaluation protocol, applied after training",
    "eval_windows": "evaluation protocol, applied after training",
    "eval_samples": "evaluation protocol, applied after training",
    "changed_threshold": "evaluation protocol, applied after training",
    "sweep_seq_lens": "the attention-cost sweep builds its own throwaway models",
}
