"""The machine a run happens on: which device, what to call it, which precision, how to wait for
it and how to time a call on it. A leaf: it imports nothing else of the package.

Wall-clock numbers are only comparable between runs on the same device, so every history,
checkpoint and results file records `device_record(device)`: the type (cpu / cuda / mps), a
human name (the CPU model or the GPU model) and, on a CPU, the thread count and the instruction
sets that change a step's speed (one CPU model name covers Xeons with and without AMX).

Two decisions are made here and their evidence comes from a caller that can build models (this
module imports nothing else of the package): the precision amp="auto" picks on a CPU where bf16
is a candidate is MEASURED (`precision_choice`, with a timer that `runs/benchmark.py` registers,
remembered per CPU in a small JSON cache), and MPS is used only after a self-check
(`mps_refusal`, with the check that `runs/benchmark.py` registers).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
import warnings
from pathlib import Path

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


CPU_FEATURE_KEYS = ("isa", "avx2", "avx512_bf16", "amx")


def _cpu_flag(name: str) -> bool:
    """One of torch.cpu's private feature probes (_is_amx_tile_supported, ...); False where absent."""
    probe = getattr(getattr(torch, "cpu", None), name, None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # noqa: BLE001  (a probe that cannot run says nothing)
        return False


def cpu_features() -> dict:
    """What changes a CPU step's speed beyond the model name: {"isa": the vector instruction set
    torch dispatches to ("AVX2", "AVX512", "DEFAULT", ...), "avx2", "avx512_bf16", "amx": bools}."""
    get_isa = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    try:
        isa = str(get_isa()) if get_isa is not None else "unknown"
    except Exception:  # noqa: BLE001
        isa = "unknown"
    return {"isa": isa, "avx2": _cpu_flag("_is_avx2_supported"),
            "avx512_bf16": _cpu_flag("_is_avx512_bf16_supported"), "amx": _cpu_flag("_is_amx_tile_supported")}


def device_record(device: torch.device | str) -> dict:
    """{"type", "name", "threads"} (+ on a CPU the CPU_FEATURE_KEYS): what a wall-clock number was
    measured on.

    `threads` is the torch CPU thread count on a CPU (it changes a CPU step time ~2x) and None on
    a GPU, where it does not matter. The CPU features tell apart CPUs sold under one name: an
    "Intel(R) Xeon(R) Processor" with AMX ran bf16 1.8x faster than fp32, one with only AVX-512
    BF16 1.4x slower."""
    device = torch.device(device)
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "threads": None}
    if device.type == "mps":
        return {"type": "mps", "name": "Apple GPU", "threads": None}
    return {"type": device.type, "name": cpu_model(), "threads": torch.get_num_threads(), **cpu_features()}


def _feature_words(rec: dict) -> str:
    """"AVX2" / "AVX512, AVX-512 BF16, AMX": the instruction sets of a CPU record, for humans."""
    words = [rec["isa"]] if rec.get("isa") not in (None, "unknown") else []
    words += [label for key, label in (("avx512_bf16", "AVX-512 BF16"), ("amx", "AMX")) if rec.get(key)]
    return ", ".join(words)


def device_name(device: torch.device | str) -> str:
    """One line for humans: "cuda: NVIDIA H100 80GB HBM3" or "cpu: AMD EPYC, 2 threads, AVX2"."""
    rec = device_record(device)
    if rec["threads"] is not None:
        features = _feature_words(rec)
        threads = f"{rec['threads']} thread{'' if rec['threads'] == 1 else 's'}"
        return f"{rec['type']}: {rec['name']}, {threads}" + (f", {features}" if features else "")
    return f"{rec['type']}: {rec['name']}"


def same_device(a: dict | None, b: dict | None) -> bool:
    """True when two device records describe the same kind of machine, so wall clocks compare.

    type, name and threads must match. The CPU features (CPU_FEATURE_KEYS) are compared where
    BOTH records have them: a record written before they were recorded (the shipped checkpoints
    and seeds files may hold such records) is "the same" as a new one exactly when type, name and
    threads match, which is all it can say about itself."""
    if not a or not b:
        return False
    if not all(a.get(k) == b.get(k) for k in ("type", "name", "threads")):
        return False
    return all(a[k] == b[k] for k in CPU_FEATURE_KEYS if k in a and k in b)


def cpu_has_fast_bf16() -> bool:
    """Intel AMX tiles or AVX-512 BF16: the only CPUs where bf16 MAY beat fp32 (a candidate, to be
    measured: an Intel Xeon with AVX-512 BF16 and no AMX ran a step 1.4x slower in bf16)."""
    return _cpu_flag("_is_amx_tile_supported") or _cpu_flag("_is_avx512_bf16_supported")


# ---- amp="auto" on a CPU: measured, then remembered ----------------------------------------------
# The timer times one training step at a precision: timer(amp, device) -> ms, amp "off" or "bf16".
# It has to build a model, which this leaf module cannot do: runs/benchmark.py registers its
# `precision_step_ms` here (set_precision_timer) when the package is imported.
PRECISION_CACHE_ENV = "WM_PRECISION_CACHE"  # a file path; overrides the default location (tests use it)
_precision_timer = None
_precision_choices: dict[str, dict] = {}  # this process's answers, by cache key


def set_precision_timer(timer) -> None:
    """Register timer(amp: "off" | "bf16", device) -> median ms of a training step (or None)."""
    global _precision_timer
    _precision_timer = timer


def precision_cache_path() -> Path:
    """$WM_PRECISION_CACHE, else $XDG_CACHE_HOME/wmhelpers/precision.json (~/.cache by default)."""
    if os.environ.get(PRECISION_CACHE_ENV):
        return Path(os.environ[PRECISION_CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "wmhelpers" / "precision.json"


def precision_key(device: torch.device | str) -> str:
    """The machine a precision timing holds for: the device record (CPU model, threads, instruction
    sets) and the torch version (its bf16 kernels change between releases)."""
    return json.dumps({"record": device_record(device), "torch": torch.__version__.split("+")[0]}, sort_keys=True)


def _read_precision_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_precision_cache(path: Path, key: str, entry: dict) -> str | None:
    """Add one entry (atomically: write a temporary file, then rename); the problem, or None."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_precision_cache(path)
        data[key] = entry
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
        return None
    except OSError as err:
        return f"{type(err).__name__}: {err}"


def precision_choice(device: torch.device | str, timer=None) -> dict:
    """What amp="auto" picks on `device`, and why: {"dtype": torch.bfloat16 or None (fp32),
    "source": "gpu rule" | "not a candidate" | "measured" | "cached" | "not measured",
    "fp32_ms", "bf16_ms" (where timed), "cache" (its path, where used), "note" (why not measured)}.

    - CUDA: fp32 (today's rule: on an H100 a bf16-autocast Transformer step took 23.1 ms against
      19.3 ms in fp32, launch-bound at this size; a T4 has no native bf16 at all). MPS and
      anything else: fp32.
    - CPU without AMX / AVX-512 BF16: fp32, not measured (bf16 is emulated there: an AVX2-only AMD
      EPYC took 9.4 s vs 0.34 s per step, 28x slower).
    - CPU with AMX or AVX-512 BF16 (a candidate): the answer cached for this CPU, threads and torch
      version; else one training step is timed both ways (`timer`, default the registered one)
      and bf16 is picked only if it was measured FASTER; the answer is cached. No timer, or a
      timer that fails: fp32, not cached (it is tried again in the next process).
    The timer runs with the global RNG state saved and restored, so measuring never changes what
    is trained afterwards.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return {"dtype": None, "source": "gpu rule"}
    if device.type != "cpu":
        return {"dtype": None, "source": "not a candidate"}
    if not cpu_has_fast_bf16():
        return {"dtype": None, "source": "not a candidate"}
    key = precision_key(device)
    if key in _precision_choices:
        return _precision_choices[key]
    path = precision_cache_path()
    entry = _read_precision_cache(path).get(key)
    if isinstance(entry, dict) and entry.get("choice") in ("bf16", "fp32"):
        out = _choice(entry["choice"] == "bf16" and _faster(entry), "cached", entry, path)
        _precision_choices[key] = out
        return out
    timer = timer or _precision_timer
    if timer is None:
        return {"dtype": None, "source": "not measured", "note": "no step timer registered"}
    print(f"amp='auto': this CPU has AMX or AVX-512 BF16, so a training step is timed in fp32 and in bf16 "
          f"(once for this CPU; the answer is kept in {path})")
    try:
        with torch.random.fork_rng(devices=[]):
            fp32_ms, bf16_ms = float(timer("off", device)), float(timer("bf16", device))
    except Exception as err:  # noqa: BLE001  (a failed timing must never fail the run: fp32)
        note = f"timing failed: {type(err).__name__}: {err}".splitlines()[0][:200]
        warnings.warn(f"amp='auto': {note}; using fp32", RuntimeWarning, stacklevel=2)
        out = {"dtype": None, "source": "not measured", "note": note}
        _precision_choices[key] = out
        return out
    entry = {"choice": "bf16" if bf16_ms < fp32_ms else "fp32", "fp32_ms": fp32_ms, "bf16_ms": bf16_ms,
             "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    problem = _write_precision_cache(path, key, entry)
    out = _choice(entry["choice"] == "bf16", "measured", entry, path)
    if problem:
        out["note"] = f"not cached ({problem})"
    _precision_choices[key] = out
    return out


def _faster(entry: dict) -> bool:
    """A cached "bf16" holds only if its own numbers say bf16 was faster (a hand-edited file cannot
    make amp=auto pick a precision measured slower)."""
    try:
        return float(entry["bf16_ms"]) < float(entry["fp32_ms"])
    except (KeyError, TypeError, ValueError):
        return False


def _choice(bf16: bool, source: str, entry: dict, path: Path) -> dict:
    return {"dtype": torch.bfloat16 if bf16 else None, "source": source, "fp32_ms": entry.get("fp32_ms"),
            "bf16_ms": entry.get("bf16_ms"), "cache": str(path)}


def resolve_amp_dtype(amp: str, device: torch.device | str, timer=None) -> torch.dtype | None:
    """The autocast dtype for the conv encoder/decoder: torch.bfloat16 or None (fp32).

    "off" -> fp32; "bf16" -> bf16 wherever asked; "auto" -> `precision_choice`: fp32 on a GPU and
    on CPUs without AMX / AVX-512 BF16; on a CPU with them, whichever a training step was MEASURED
    faster in (bf16 never wins on flags alone: flags did not predict it)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp != "auto":
        raise ValueError(f"amp={amp!r}: choose 'auto', 'bf16' or 'off'")
    return precision_choice(device, timer)["dtype"]


# ---- MPS only after a self-check ------------------------------------------------------------------
# The check runs one training step and one imagination step on MPS and on the CPU and compares
# them: check() -> None when MPS is fit, else why not. runs/benchmark.py registers `mps_self_check`.
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


def mps_refusal(check=None) -> str | None:
    """Why MPS is not used here (None: it passed its self-check). Checked once per process; the
    first refusal is printed once (the device line repeats it)."""
    if _mps_refusals and check is None:
        return _mps_refusals[0]
    check = check or _mps_check
    if check is None:
        reason = "no self-check is available to test it"
    else:
        try:
            reason = check()
        except Exception as err:  # noqa: BLE001  (any failure of the check: not fit)
            reason = f"the self-check failed: {type(err).__name__}: {err}".splitlines()[0][:200]
    _mps_refusals[:] = [reason]
    if reason is not None:
        print(f"MPS (Apple GPU) is available but not used: {reason}. Running on the CPU.")
    return reason


def precision_name(dtype: torch.dtype | None) -> str:
    return "bf16 autocast (conv parts)" if dtype == torch.bfloat16 else "fp32"


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
