"""The notebook's device line: what was picked and why (device, precision, budget), and on a GPU
which fast path the training step and imagination take."""

from __future__ import annotations

from ..device import device_name, precision_name
from ..models.transformer import imagination_backend
from ..training.step import training_backend

BUDGETS = {"smoke": "smoke budget (WM_SMOKE=1): tiny, for CI only",
           "gpu": "GPU preset: a larger budget, both models trained here (WM_PRESET=cpu for the CPU default)",
           "cpu": "CPU default budget (the shipped checkpoints and seeds were made with it)",
           "custom": "a custom budget"}


def describe_run(cfg) -> str:
    """The notebook's device line: what was picked and why (device, precision, budget)."""
    device = cfg.resolve_device()
    dtype = cfg.resolve_amp_dtype(device)
    if cfg.amp != "auto":
        why_precision = f"amp={cfg.amp!r} asked for it"
    elif device.type == "cpu":
        why_precision = ("this CPU has AMX or AVX-512 BF16, where bf16 convolutions are faster" if dtype is not None
                         else "no AMX / AVX-512 BF16 on this CPU, where bf16 would be emulated and slower")
    elif device.type == "cuda":
        why_precision = "bf16 autocast was measured slower than fp32 on a GPU at this model size"
    else:
        why_precision = "the safe default here"
    line = (f"device: {device_name(device)}\n"
            f"precision: {precision_name(dtype)} ({why_precision})\n"
            f"budget: {cfg.train_steps:,} steps x batch {cfg.batch_size} x {cfg.seq_len} steps, lr {cfg.lr:g}; "
            f"{BUDGETS[cfg.preset]}")
    if device.type == "cuda":  # the fast paths, and whether they fell back (said here, once)
        line += (f"\ntraining step: {training_backend(cfg, device)}\n"
                 f"imagination: {imagination_backend(device)}")
    return line
