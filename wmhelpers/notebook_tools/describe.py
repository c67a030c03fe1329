"""The notebook's device line: what was picked and why (device, precision, budget), and on a GPU
which fast path the training step and imagination take."""

from __future__ import annotations

from ..cuda_graphs import imagination_backend
from ..device import device_name, mps_refused, precision_choice, precision_name
from ..training.step import training_backend

BUDGETS = {"smoke": "smoke budget (WM_SMOKE=1): tiny, for CI only",
           "gpu": "GPU preset: a larger budget, both models trained here (WM_PRESET=cpu for the CPU default)",
           "cpu": "CPU default budget (the shipped checkpoints and seeds were made with it)",
           "custom": "a custom budget"}


def precision_reason(cfg, device) -> str:
    """Why the precision is what it is, in words: asked for, measured here (both times), read from
    the cache of an earlier measurement on this CPU, or a rule (GPU; a CPU where bf16 is emulated)."""
    if cfg.amp != "auto":
        return f"amp={cfg.amp!r} asked for it"
    choice = precision_choice(device)
    source = choice["source"]
    if source in ("measured", "cached"):
        picked = "bf16" if choice["dtype"] is not None else "fp32"
        when = ("measured here" if source == "measured"
                else f"cached: measured earlier on this CPU, {choice.get('cache')}")
        note = f"; {choice['note']}" if choice.get("note") else ""
        return (f"a training step took {choice['fp32_ms']:.0f} ms in fp32 and {choice['bf16_ms']:.0f} ms in bf16 "
                f"({when}{note}): {picked} is the faster")
    if source == "not measured":
        return f"this CPU has AMX or AVX-512 BF16 but bf16 was not measured ({choice.get('note')}), so fp32"
    if source == "gpu rule":
        return "bf16 autocast was measured slower than fp32 on a GPU at this model size"
    if device.type == "cpu":
        return "no AMX / AVX-512 BF16 on this CPU, where bf16 would be emulated and slower; not measured"
    return "the safe default here"


def describe_run(cfg) -> str:
    """The notebook's device line: what was picked and why (device, precision, budget)."""
    device = cfg.resolve_device()
    dtype = cfg.resolve_amp_dtype(device)
    why_precision = precision_reason(cfg, device)
    refused = mps_refused() if cfg.device == "auto" and device.type == "cpu" else None
    where = f" (the Apple GPU is not used: {refused})" if refused else ""
    line = (f"device: {device_name(device)}{where}\n"
            f"precision: {precision_name(dtype)} ({why_precision})\n"
            f"budget: {cfg.train_steps:,} steps x batch {cfg.batch_size} x {cfg.seq_len} steps, lr {cfg.lr:g}; "
            f"{BUDGETS[cfg.preset]}")
    if device.type == "cuda":  # the fast paths, and whether they fell back (said here, once)
        line += (f"\ntraining step: {training_backend(cfg, device)}\n"
                 f"imagination: {imagination_backend(device)}")
    return line
