"""The machine a run happens on: which device, what to call it, which precision, how to wait for it.

Wall-clock numbers are only comparable between runs on the same device, so every history,
checkpoint and results file records `device_record(device)`: the type (cpu / cuda / mps), a
human name (the CPU model or the GPU model) and, on a CPU, the thread count.
"""

from __future__ import annotations

import platform

import torch


def sync(device: torch.device | str) -> None:
    """Wait for queued device work, so a wall clock measures it (CUDA and MPS run asynchronously)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_record(device: torch.device | str) -> dict:
    """{"type", "name", "threads"}: what a wall-clock number was measured on.

    `threads` is the torch CPU thread count on a CPU (it changes a CPU step time ~2x) and None on
    a GPU, where it does not matter."""
    device = torch.device(device)
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "threads": None}
    if device.type == "mps":
        return {"type": "mps", "name": "Apple GPU", "threads": None}
    return {"type": device.type, "name": cpu_model(), "threads": torch.get_num_threads()}


def device_name(device: torch.device | str) -> str:
    """One line for humans: "cuda: NVIDIA H100 80GB HBM3" or "cpu: AMD EPYC, 2 threads"."""
    rec = device_record(device)
    if rec["threads"] is not None:
        return f"{rec['type']}: {rec['name']}, {rec['threads']} threads"
    return f"{rec['type']}: {rec['name']}"


def same_device(a: dict | None, b: dict | None) -> bool:
    """True when two device records describe the same kind of machine, so wall clocks compare."""
    if not a or not b:
        return False
    return all(a.get(k) == b.get(k) for k in ("type", "name", "threads"))


def cpu_has_fast_bf16() -> bool:
    """Intel AMX tiles or AVX-512 BF16: the only CPUs where bf16 convolutions beat fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_amp_dtype(amp: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for the conv encoder/decoder: torch.bfloat16 or None (fp32).

    "off" -> fp32; "bf16" -> bf16 wherever asked; "auto" picks what was measured faster:
    - CUDA: fp32. On an H100 a bf16-autocast Transformer step took 23.1 ms against 19.3 ms in
      fp32 (the step is launch-bound at this size, and autocast adds casts); a T4 has no native
      bf16 at all (is_bf16_supported() says True there only through emulation).
    - CPU: bf16 only with AMX or AVX-512 BF16. Intel Xeon with AMX: ~1.8x faster in bf16; AMD
      EPYC Zen 5 (AVX-512 BF16): 175 vs 193 ms; AMD EPYC with AVX2 only: 9.4 s vs 0.34 s per
      step (28x SLOWER, bf16 is emulated there).
    - MPS and anything else: fp32.
    """
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp != "auto":
        raise ValueError(f"amp={amp!r}: choose 'auto', 'bf16' or 'off'")
    device = torch.device(device)
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    return "bf16 autocast (conv parts)" if dtype == torch.bfloat16 else "fp32"


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
    budgets = {"smoke": "smoke budget (WM_SMOKE=1): tiny, for CI only",
               "gpu": "GPU preset: a larger budget, both models trained here (WM_PRESET=cpu for the CPU default)",
               "cpu": "CPU default budget (the shipped checkpoints and seeds were made with it)",
               "custom": "a custom budget"}
    line = (f"device: {device_name(device)}\n"
            f"precision: {precision_name(dtype)} ({why_precision})\n"
            f"budget: {cfg.train_steps:,} steps x batch {cfg.batch_size} x {cfg.seq_len} steps, lr {cfg.lr:g}; "
            f"{budgets[cfg.preset]}")
    if device.type == "cuda":  # the fast paths, and whether they fell back (said here, once)
        from .train_step import training_backend
        from .transformer import imagination_backend

        line += (f"\ntraining step: {training_backend(cfg, device)}\n"
                 f"imagination: {imagination_backend(device)}")
    return line


def graph_capture_failed(failures: list, err: Exception, what: str, instead: str) -> None:
    """A CUDA-graph fast path failed: remember why in `failures` (that path is not tried again in
    this process and the device line shows the reason), warn once, and let queued work finish."""
    import warnings

    failures.append(f"{type(err).__name__}: {err}".splitlines()[0][:200])
    warnings.warn(f"{what} is unavailable here ({failures[0]}); {instead}.", RuntimeWarning, stacklevel=4)
    try:  # a failed capture can leave work queued on a side stream
        torch.cuda.synchronize()
    except Exception:  # noqa: BLE001
        pass


def graph_unavailable(device: torch.device | str, enabled: bool, failures: list) -> str | None:
    """Why a CUDA-graph fast path does not run on `device` ("eager (...)"), or None when it does."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"eager ({device.type})"
    if not enabled:
        return "eager (CUDA graphs switched off)"
    if failures:
        return f"eager (CUDA-graph capture failed: {failures[0]})"
    return None
