"""The machine a run happens on: which device, what to call it, which precision, how to wait for
it, how to time a call on it, and the CUDA-graph fast paths (`GraphPath`). A leaf: it imports
nothing else of the package.

Wall-clock numbers are only comparable between runs on the same device, so every history,
checkpoint and results file records `device_record(device)`: the type (cpu / cuda / mps), a
human name (the CPU model or the GPU model) and, on a CPU, the thread count.
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings

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


# ---- CUDA graphs: the one helper both fast paths use (the training step, a KV-cache imagination step) ----
# At this model size a step is hundreds of tiny kernels, each launched by Python: launching them,
# not computing them, is the cost on a GPU (../shared/GPU.md). A CUDA graph records the step once
# and replays it with one launch. A `GraphPath` is one such fast path: whether it is switched on,
# why it stopped (a capture failure is remembered for the rest of the process, warned once, and
# shown on the notebook's device line), and how it is captured.
@contextlib.contextmanager
def side_stream(device: torch.device | str):
    """Run the block on a side stream on CUDA (the documented pattern for work before a capture:
    lazy library setup must happen outside it); elsewhere nothing."""
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(stream):
            yield
    finally:
        torch.cuda.current_stream(device).wait_stream(stream)


def capture(step, device: torch.device | str, warmup: int = 0) -> tuple:
    """(graph, outputs): `step` recorded once (after `warmup` calls on a side stream); graph.replay()
    runs it again, writing into the same output tensors."""
    if warmup:
        with side_stream(device):
            for _ in range(warmup):
                step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    return graph, out


class GraphPath:
    """One CUDA-graph fast path: switched on (`enabled`; set False to run eagerly, to compare or to
    debug) and not failed before in this process (`failures`)."""

    def __init__(self, what: str, instead: str, running: str):
        self.what, self.instead, self.running = what, instead, running
        self.enabled = True
        self.failures: list[str] = []

    def usable(self, device: torch.device | str) -> bool:
        return self.unavailable(device) is None

    def unavailable(self, device: torch.device | str) -> str | None:
        """Why the path does not run on `device` ("eager (...)"), or None when it does."""
        device = torch.device(device)
        if device.type != "cuda":
            return f"eager ({device.type})"
        if not self.enabled:
            return "eager (CUDA graphs switched off)"
        if self.failures:
            return f"eager (CUDA-graph capture failed: {self.failures[0]})"
        return None

    def backend(self, device: torch.device | str) -> str:
        """How the path runs on `device`, in words, for the notebook's device line."""
        return self.unavailable(device) or self.running

    def failed(self, err: Exception) -> None:
        """A capture failed: remember why (the path is not tried again in this process), warn once,
        and let queued work finish."""
        self.failures.append(f"{type(err).__name__}: {err}".splitlines()[0][:200])
        warnings.warn(f"{self.what} is unavailable here ({self.failures[0]}); {self.instead}.", RuntimeWarning,
                      stacklevel=3)
        try:  # a failed capture can leave work queued on a side stream
            torch.cuda.synchronize()
        except Exception:  # noqa: BLE001
            pass
