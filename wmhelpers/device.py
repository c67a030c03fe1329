"""The machine a run happens on: which device, what to call it (`device_record`, recorded with
every wall-clock number), which precision, how to time a call on it, and MPS only after a
self-check (`mps_refusal`; runs/benchmark.py registers the check). Imports nothing of the package.
"""

from __future__ import annotations

import os
import platform
import time

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
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            return names[0]
    return platform.processor() or platform.machine()


CPU_FEATURE_KEYS = ("isa", "avx2", "avx512_bf16", "amx")


def _cpu_flag(name: str) -> bool:
    """One of torch.cpu's feature probes (_is_amx_tile_supported, ...)."""
    return bool(getattr(torch.cpu, name)())


def cpu_features() -> dict:
    """What changes a CPU step's speed beyond the model name: {"isa": the vector instruction set
    torch dispatches to ("AVX2", "AVX512", "DEFAULT", ...), "avx2", "avx512_bf16", "amx": bools}."""
    return {"isa": torch.backends.cpu.get_cpu_capability(), "avx2": _cpu_flag("_is_avx2_supported"),
            "avx512_bf16": _cpu_flag("_is_avx512_bf16_supported"), "amx": _cpu_flag("_is_amx_tile_supported")}


def device_record(device: torch.device | str) -> dict:
    """{"type", "name", "threads"} (+ on a CPU the CPU_FEATURE_KEYS, which tell apart CPUs sold under
    one name): what a wall-clock number was measured on. threads: None on a GPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "threads": None}
    if device.type == "mps":
        return {"type": "mps", "name": "Apple GPU", "threads": None}
    return {"type": device.type, "name": cpu_model(), "threads": torch.get_num_threads(), **cpu_features()}


def device_name(device: torch.device | str) -> str:
    """One line for humans: "cuda: NVIDIA H100 80GB HBM3" or "cpu: AMD EPYC, 2 threads, AVX2"."""
    rec = device_record(device)
    if rec["threads"] is None:
        return f"{rec['type']}: {rec['name']}"
    features = [rec["isa"]] + [label for key, label in (("avx512_bf16", "AVX-512 BF16"), ("amx", "AMX")) if rec[key]]
    threads = f"{rec['threads']} thread{'' if rec['threads'] == 1 else 's'}"
    return f"{rec['type']}: {rec['name']}, {threads}, " + ", ".join(features)


def same_device(a: dict | None, b: dict | None) -> bool:
    """True when two device records describe the same kind of machine, so wall clocks compare: type,
    name and threads match, and the CPU features where both have them (older records lack them)."""
    if not a or not b:
        return False
    if not all(a.get(k) == b.get(k) for k in ("type", "name", "threads")):
        return False
    return all(a[k] == b[k] for k in CPU_FEATURE_KEYS if k in a and k in b)


# ---- precision: part of the experiment, never picked per machine ---------------------------------
# bf16 ran a step faster on that Xeon (192 against 299 ms) and still lost: "auto" is fp32 on every
# device, as the shipped checkpoints and seeds were trained; bf16 is an explicit choice both models share.
BF16_FINDING = ("bf16 changed what this model learned: on an Intel Xeon with AMX, Transformer seed 0 trained in "
                "bf16 imagined 25.70 dB at h = 1 against 27.33 dB in fp32 (same seed, same machine)")
PRECISIONS = {"auto": "fp32", "off": "fp32", "bf16": "bf16"}


def precision_of(amp: str) -> str:
    """The precision an amp setting trains in: "fp32" ("auto", "off") or "bf16" ("bf16")."""
    if amp not in PRECISIONS:
        raise ValueError(f"amp={amp!r}: choose one of {sorted(PRECISIONS)}")
    return PRECISIONS[amp]


def resolve_amp_dtype(amp: str, device: torch.device | str | None = None) -> torch.dtype | None:
    """The autocast dtype for the conv encoder/decoder: torch.bfloat16 for amp="bf16", else None
    (fp32). `device` does not change it: precision changes what is learned (BF16_FINDING), so it is
    a setting of the experiment, not of the machine."""
    return torch.bfloat16 if precision_of(amp) == "bf16" else None


# ---- MPS only after a self-check: check() -> None when MPS is fit, else why not -----------------------
_mps_check = None
_mps_refusals: list = []  # [reason or None] once checked in this process


def set_mps_check(check) -> None:
    """Register check() -> None (MPS gives finite results close to the CPU's) or a reason string."""
    global _mps_check
    _mps_check = check
    _mps_refusals.clear()


def mps_refused() -> str | None:
    """Why MPS was checked and refused in this process (None: not checked, or it passed)."""
    return _mps_refusals[0] if _mps_refusals else None


def mps_refusal() -> str | None:
    """Why MPS is not used here (None: it passed its self-check). Checked once per process; a
    refusal is printed once (the device line repeats it)."""
    if _mps_refusals:
        return _mps_refusals[0]
    if _mps_check is None:
        reason = "no self-check is available to test it"
    else:
        try:
            reason = _mps_check()
        except Exception as err:  # noqa: BLE001  (any failure of the check: not fit)
            reason = f"the self-check failed: {type(err).__name__}: {err}".splitlines()[0][:200]
    _mps_refusals[:] = [reason]
    if reason is not None:
        print(f"MPS (Apple GPU) is available but not used: {reason}. Running on the CPU.")
    return reason


def seconds(fn, device: torch.device | str) -> float:
    """Wall time of one call of `fn`, waiting for the device before and after (GPUs run asynchronously)."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def median_ms(fn, repeats: int, warmup: int, device: torch.device | str) -> float:
    """Median wall ms of `repeats` calls of `fn` after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = sorted(seconds(fn, device) for _ in range(repeats))
    return 1000 * times[len(times) // 2]
