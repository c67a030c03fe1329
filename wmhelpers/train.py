"""One training loop for any world model, with a history that P05 and the plots can read.

Both world models go through `train_world_model` with the same optimizer, the same seeded
batches, the same clipping and the same number of gradient steps: the budget is the
ExperimentConfig, not the model.
"""

from __future__ import annotations

import math
import time

import torch

from .config import ExperimentConfig
from .data import EpisodeDataset
from .progress import progress_bar


def _sync(device: torch.device) -> None:
    """Wait for queued device work, so the wall clock measures it (CUDA/MPS run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def validation_windows(val: EpisodeDataset, cfg: ExperimentConfig) -> dict:
    """The fixed validation windows every model is validated on (chosen by cfg.seed)."""
    return val.fixed_windows(cfg.val_windows, cfg.seq_len, seed=cfg.seed)


@torch.no_grad()
def next_frame_mse(model, windows: dict, chunk: int = 16) -> float:
    """The architecture-neutral validation metric: mean squared error per pixel of the decoded
    teacher-forced one-step prediction of every next frame, o_hat_{t+1} = decode(mode p(z_{t+1} | o_<=t, a_<=t)).
    The same function for every world model: it only calls `predict_next` and `decode`."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows["obs"]), chunk):
        obs = windows["obs"][i : i + chunk].to(model.device)
        act = windows["action"][i : i + chunk].to(model.device)
        pred = model.decode(model.predict_next(obs, act))
        total += float((pred - obs[:, 1:]).pow(2).sum())
        count += pred.numel()
    model.train(was_training)
    return total / count


@torch.no_grad()
def validation_loss(model, windows: dict, seed: int, chunk: int = 16) -> dict:
    """The model's own loss terms on the fixed validation windows (latent samples seeded, so repeatable)."""
    was_training = model.training
    model.eval()
    sums, n = {}, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(windows["obs"]), chunk):
            batch = {k: v[i : i + chunk] for k, v in windows.items() if k != "start"}
            _, terms = model.loss(batch)
            b = len(batch["obs"])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * b
            n += b
    model.train(was_training)
    return {k: v / n for k, v in sums.items()}


def make_optimizer(model, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)


def train_world_model(model, train: EpisodeDataset, val: EpisodeDataset, cfg: ExperimentConfig,
                      progress: bool = True, desc: str | None = None) -> dict:
    """Train for cfg.train_steps gradient steps and return the history.

    history = {
      "kind", "steps", "step": [..], "wall_seconds": [..] (training only, validation excluded),
      "train": {term: [..]} (mean over the steps since the last record), "val": {term: [..]},
      "val_next_frame_mse": [..], "ms_per_step", "train_seconds", "device",
    }
    Records are taken at step 0 (before any update), every cfg.log_every steps and at the end.
    """
    device = model.device
    torch.manual_seed(cfg.seed)  # latent sampling and dropout
    batches = torch.Generator().manual_seed(cfg.seed)  # the same batches for every model
    optimizer = make_optimizer(model, cfg)
    windows = validation_windows(val, cfg)
    history = {"kind": model.kind, "steps": cfg.train_steps, "device": str(device), "step": [],
               "wall_seconds": [], "train": {}, "val": {}, "val_next_frame_mse": []}
    running: dict[str, float] = {}
    since = 0
    wall = 0.0

    def record(step: int) -> None:
        nonlocal running, since
        history["step"].append(step)
        history["wall_seconds"].append(wall)
        for k, v in running.items():
            history["train"].setdefault(k, []).append(v / max(since, 1))
        for k, v in validation_loss(model, windows, cfg.seed).items():
            history["val"].setdefault(k, []).append(v)
        history["val_next_frame_mse"].append(next_frame_mse(model, windows))
        running, since = {}, 0

    model.train()
    record(0)
    bar = progress_bar(range(1, cfg.train_steps + 1), desc=desc or f"training {model.kind}", disable=not progress)
    for step in bar:
        batch = train.sample(cfg.batch_size, cfg.seq_len, batches)
        _sync(device)
        start = time.perf_counter()
        loss, terms = model.loss(batch)
        bad = [k for k, v in terms.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"{model.kind}: loss term(s) {bad} became {[terms[k] for k in bad]} at step {step}; "
                f"training stopped (try a lower lr than {cfg.lr})."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        _sync(device)
        wall += time.perf_counter() - start
        for k, v in terms.items():
            running[k] = running.get(k, 0.0) + v
        since += 1
        if step % 10 == 0 or step == cfg.train_steps:
            bar.set_postfix(recon=f"{terms['recon_loss']:.1f}", dyn=f"{terms['dyn_loss']:.2f}",
                            kl=f"{terms['kl']:.2f}", refresh=False)
        if step % cfg.log_every == 0 or step == cfg.train_steps:
            record(step)
    model.eval()
    history["train_seconds"] = wall
    history["ms_per_step"] = 1000.0 * wall / cfg.train_steps
    return history


def load_or_train(model_cls, path, cfg: ExperimentConfig, data: EpisodeDataset, train: EpisodeDataset,
                  val: EpisodeDataset, progress: bool = True):
    """(model, history) from the checkpoint at `path` if it matches cfg and data; otherwise say
    why, train one with the same function and budget, and save it there."""
    from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint

    try:
        model, history = load_checkpoint(path, expect=cfg, data=data)
        print(f"Loaded {path}: {model.kind}, {history.get('steps')} steps, trained in "
              f"{history.get('train_seconds', 0):.0f} s on {history.get('device')}.")
        return model, history
    except CheckpointError as exc:
        print(f"Not using {path}: {exc}\nTraining it now with the same function and budget.")
    model = model_cls.from_config(cfg, num_actions=data.num_actions)
    history = train_world_model(model, train, val, cfg, progress=progress)
    save_checkpoint(path, model, cfg, history, data)
    return model, history
