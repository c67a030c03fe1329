"""One gradient step of a world model (loss, backward, clipping, Adam), shared by both models.

Eager everywhere; on CUDA (fp32) the whole step is recorded once as a CUDA graph and replayed
(`cuda_graphs.TRAINING_GRAPHS`) after WARMUP_STEPS eager steps on a side stream, which are real
training steps, so every path takes exactly cfg.train_steps updates. Neither path reads a number
back from the device (a `float(loss)` per step would stall the GPU queue); if capture fails, the
step warns once and stays eager.
"""

from __future__ import annotations

import torch

from ..cuda_graphs import TRAINING_GRAPHS, side_stream
from ..cuda_graphs import TRAINING_WARMUP_STEPS as WARMUP_STEPS
from ..device import median_ms

TERMS = ("total", "recon_loss", "dyn_loss", "rep_loss", "reward_loss", "cont_loss", "kl")


def make_optimizer(model, cfg, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam(lr, eps) over every parameter; capturable (CUDA graphs) keeps its step count on the device."""
    extra = {"capturable": True} if capturable else {}
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, **extra)


def graphs_wanted(cfg, device: torch.device | str) -> bool:
    """Whether training on `device` tries a CUDA graph: CUDA, fp32, switched on, not failed before."""
    return TRAINING_GRAPHS.usable(device) and cfg.precision == "fp32"


def training_backend(cfg, device: torch.device | str) -> str:
    """How the training step runs on `device`, in words, for the notebook's device line."""
    unavailable = TRAINING_GRAPHS.unavailable(device)
    if unavailable:
        return unavailable
    if cfg.precision != "fp32":
        return "eager (autocast asked for; graphs are captured in fp32 only)"
    return TRAINING_GRAPHS.running


class TrainStep:
    """One gradient step per call on a batch: returns the loss terms [len(TERMS)] on the device, not
    waiting for it; `backend` says which path ran. `capture` can be a stand-in; sample=False: mode latents."""

    def __init__(self, model, cfg, graphs: bool | None = None, capture=None, sample: bool = True):
        self.model, self.grad_clip, self.sample = model, cfg.grad_clip, sample
        self.capture = capture or TRAINING_GRAPHS.capture
        device = model.device
        self.use_graph = graphs_wanted(cfg, device) if graphs is None else bool(graphs)
        self.optimizer = make_optimizer(model, cfg, capturable=self.use_graph and device.type == "cuda")
        self.steps = 0
        self.replays = 0
        self.static: dict | None = None  # the graph's fixed input batch
        self.replay = None
        self.out: torch.Tensor | None = None  # the graph's fixed output terms

    @property
    def backend(self) -> str:
        if self.replay is not None:
            return "CUDA graph"
        return "eager (graph not captured yet)" if self.use_graph else "eager"

    def eager_step(self, batch: dict) -> torch.Tensor:
        """L = model.loss_terms(batch); backward; clip the gradient norm to cfg.grad_clip; Adam."""
        loss, terms = self.model.loss_terms(batch, sample=self.sample)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return torch.stack([terms[k] for k in TERMS])

    def __call__(self, batch: dict) -> torch.Tensor:
        self.steps += 1
        if self.replay is not None:
            return self._replay(batch)
        if not self.use_graph:
            return self.eager_step(batch)
        with side_stream(self.model.device):
            terms = self.eager_step(batch)
        if self.steps >= WARMUP_STEPS:
            try:
                self._capture(batch)
            except Exception as err:  # noqa: BLE001  (any capture failure: train eagerly, never fail)
                self.use_graph, self.replay, self.static, self.out = False, None, None, None
                self.optimizer.zero_grad(set_to_none=True)
                TRAINING_GRAPHS.failed(err)
        return terms

    # ---- the graph path -----------------------------------------------------------------------
    def _capture(self, batch: dict) -> None:
        device = self.model.device
        self.static = {k: v.to(device).clone() for k, v in batch.items() if torch.is_tensor(v)}
        # no .grad before capture: backward inside the graph then allocates them from the graph's
        # own memory, and every replay refills them in place (no zero_grad needed between replays)
        self.optimizer.zero_grad(set_to_none=True)
        graph, self.out = self.capture(lambda: self.eager_step(self.static), device)
        self.replay = graph.replay  # runs the recorded step again, into self.out

    def _replay(self, batch: dict) -> torch.Tensor:
        for k, v in self.static.items():
            v.copy_(batch[k], non_blocking=True)
        self.replay()
        self.replays += 1
        return self.out.clone()  # the next replay overwrites self.out


def train_step_ms(model, batch: dict, cfg, repeats: int = 10, warmup: int = 3,
                  graphs: bool | None = None) -> tuple[float, str]:
    """(median wall ms of one `TrainStep` on a fixed batch, its backend); the warm-up covers a CUDA
    graph's eager steps and capture, so only replays are timed."""
    model.train()
    step = TrainStep(model, cfg, graphs=graphs)
    warm = max(warmup, WARMUP_STEPS + 1) if step.use_graph else warmup
    ms = median_ms(lambda: step(batch), repeats, warm, model.device)
    return ms, step.backend
