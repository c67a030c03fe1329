"""The notebook's device line: what was picked and why (device, precision, budget), and on a GPU
which fast path the training step and imagination take."""

from __future__ import annotations

import textwrap

from ..cuda_graphs import imagination_backend
from ..device import BF16_FINDING, device_name, mps_refused
from ..training.step import training_backend

BUDGETS = {"smoke": "smoke budget (WM_SMOKE=1): tiny, for CI only",
           "gpu": "GPU preset: a larger budget, both models trained here (WM_PRESET=cpu for the CPU default)",
           "cpu": "CPU default budget (the shipped checkpoints and seeds were made with it)",
           "custom": "a custom budget"}


def precision_reason(cfg) -> str:
    """Why the precision is what it is, in words, with the measurement behind the rule."""
    if cfg.precision == "bf16":
        return (f"amp='bf16' asked for it; both world models of the comparison then train in bf16, and the "
                f"fp32 seeds stay out of the verdict. Why it is not the default: {BF16_FINDING}")
    return (f"amp={cfg.amp!r}: fp32 on every device, as every shipped model was trained; bf16 only by "
            f"amp='bf16', because {BF16_FINDING}")


def describe_run(cfg) -> str:
    """The notebook's device line: what was picked and why (device, precision, budget)."""
    device = cfg.resolve_device()
    refused = mps_refused() if cfg.device == "auto" and device.type == "cpu" else None
    where = f" (the Apple GPU is not used: {refused})" if refused else ""
    lines = [f"device: {device_name(device)}{where}",
             f"precision: {cfg.precision} ({precision_reason(cfg)})",
             f"budget: {cfg.train_steps:,} steps x batch {cfg.batch_size} x {cfg.seq_len} steps, lr {cfg.lr:g}; "
             f"{BUDGETS[cfg.preset]}"]
    line = "\n".join(textwrap.fill(x, 110, subsequent_indent="  ") for x in lines)
    if device.type == "cuda":  # the fast paths, and whether they fell back (said here, once)
        line += (f"\ntraining step: {training_backend(cfg, device)}\n"
                 f"imagination: {imagination_backend(device)}")
    return line
