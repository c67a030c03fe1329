"""CUDA graphs: a step recorded once, then replayed with one launch (a step of these small models is
hundreds of tiny kernels, so launching them is the cost).

    TRAINING_GRAPHS     the whole training step: forward, backward, clipping, Adam (training/step.py)
    IMAGINATION_GRAPHS  one imagined step with mode latents on static state buffers (WorldModel.imagine)
A `GraphPath` says whether its path runs on a device and remembers a capture failure (warned once);
its capture function can be a stand-in, so the tests run the logic on the CPU. Imports only torch.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref

import torch


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
    debug), on a device type it runs on (`devices`), and not failed before in this process (`failures`)."""

    def __init__(self, what: str, instead: str, running: str, capture=capture, devices=("cuda",)):
        self.what, self.instead, self.running = what, instead, running
        self.capture, self.devices = capture, tuple(devices)
        self.enabled = True
        self.failures: list[str] = []

    def usable(self, device: torch.device | str) -> bool:
        return self.unavailable(device) is None

    def unavailable(self, device: torch.device | str) -> str | None:
        """Why the path does not run on `device` ("eager (...)"), or None when it does."""
        device = torch.device(device)
        if device.type not in self.devices:
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
        except Exception:  # noqa: BLE001  (no CUDA here: nothing queued)
            pass


# ----------------------------------------------------------------------------------------------
# Imagination: one step captured per model and input shape, replayed H times
# ----------------------------------------------------------------------------------------------
class ImaginationGraphs(GraphPath):
    """`WorldModel.imagine` with mode latents, each step a replay of one captured step that reads a
    static copy of the state and a static action and feeds its latent back into that state."""

    def __init__(self, capture=capture, devices=("cuda",)):
        super().__init__("CUDA-graph imagination", "imagining eagerly instead (same results, slower on a GPU)",
                         "CUDA graph of one step, static state buffers (eager if capture fails)", capture, devices)
        self.graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: _GraphedStep}

    def imagine(self, model, step, state: dict, actions: torch.Tensor) -> dict | None:
        """The open loop of `step(state, action) -> outputs` (which advances `state`) through a replayed
        graph, as `WorldModel.imagine` returns it; None if capture fails here (then warned once)."""
        try:
            graphs = self.graphs.setdefault(model, {})
            # a graph holds raw addresses: a new batch size or re-allocated weights need a new one
            key = (tuple(_shapes(v) for v in state.values()), tuple(p.data_ptr() for p in model.parameters()))
            if key not in graphs:
                if len(graphs) >= 4:  # a few batch sizes at most (evaluation chunks); free the rest
                    graphs.clear()
                graphs[key] = _GraphedStep(step, state, actions[:, 0], self.capture)
            return graphs[key].rollout(state, actions)
        except Exception as err:  # noqa: BLE001  (any capture failure: fall back, never fail a rollout)
            self.failed(err)
            return None


def _shapes(value) -> tuple:
    """The shapes of a state entry: a tensor, or an object with `tensors()` (the KV cache)."""
    tensors = value.tensors() if hasattr(value, "tensors") else [value]
    return tuple((tuple(t.shape), t.dtype) for t in tensors)


class _GraphedStep:
    def __init__(self, step, state: dict, action: torch.Tensor, capture):
        # `step` is used only while capturing; no reference to the model is kept (graphs are keyed by it weakly)
        self.state, self.action = {k: v.clone() for k, v in state.items()}, action.clone()

        def once() -> dict:
            new = dict(self.state)
            out = step(new, self.action)
            for k, v in new.items():  # the entries the step replaced become the next step's inputs
                if v is not self.state[k]:
                    self.state[k].copy_(v)
            return out

        with torch.no_grad():
            self.graph, self.out = capture(once, action.device, warmup=2)

    @torch.no_grad()
    def rollout(self, state: dict, actions: torch.Tensor) -> dict:
        for k, v in state.items():
            self.state[k].copy_(v)
        B, H = actions.shape
        outs = {key: torch.empty((B, H, *t.shape[1:]), dtype=t.dtype, device=t.device) for key, t in self.out.items()}
        for k in range(H):
            self.action.copy_(actions[:, k])
            self.graph.replay()
            for key, t in self.out.items():
                outs[key][:, k] = t
        return {**outs, "state": {k: v.clone() for k, v in self.state.items()}}


TRAINING_WARMUP_STEPS = 3  # eager steps before the training step is captured; they count as training steps
TRAINING_GRAPHS = GraphPath(
    "CUDA-graph training step", "training eagerly instead (same steps, slower on a GPU)",
    f"CUDA graph of the whole step after {TRAINING_WARMUP_STEPS} eager steps (eager if capture fails)")
IMAGINATION_GRAPHS = ImaginationGraphs()


def imagination_backend(device: torch.device | str) -> str:
    """How imagination runs on `device`, in words, for the notebook's device line."""
    return IMAGINATION_GRAPHS.backend(device)
