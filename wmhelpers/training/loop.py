"""The one training loop for any world model (same optimizer, seeded batches, clipping and step
count: the budget is the ExperimentConfig), with a history that P05 and the plots read.
"""

from __future__ import annotations

import math
import time

import torch

from ..config import ExperimentConfig
from ..data import EpisodeDataset
from ..device import device_name, device_record, sync
from ..progress import progress_bar
from .step import TERMS, TrainStep


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
    """The model's own loss terms on the fixed validation windows, sampled from a private generator
    seeded with `seed`: repeatable, and no global RNG moves (validation cannot change training)."""
    was_training = model.training
    model.eval()
    sums, n = {}, 0
    generator = torch.Generator(device=model.device).manual_seed(seed)
    for i in range(0, len(windows["obs"]), chunk):
        batch = {k: v[i : i + chunk] for k, v in windows.items() if k != "start"}
        _, terms = model.loss(batch, generator=generator)
        b = len(batch["obs"])
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * b
        n += b
    model.train(was_training)
    return {k: v / n for k, v in sums.items()}


READ_EVERY = 10  # steps between reads of the loss terms (progress bar, NaN check): one host sync each


def train_world_model(model, train: EpisodeDataset, val: EpisodeDataset, cfg: ExperimentConfig,
                      progress: bool = True, desc: str | None = None) -> dict:
    """Train for cfg.train_steps gradient steps (every random choice from cfg.train_seed) and return
    the history: kind, steps, step / wall_seconds / train {term} / val {term} / val_next_frame_mse
    (recorded at step 0, every cfg.log_every steps and at the end), ms_per_step, train_seconds,
    device, device_record, train_seed, precision, step_backend."""
    device = model.device
    torch.manual_seed(cfg.train_seed)  # latent sampling and dropout
    batches = torch.Generator().manual_seed(cfg.train_seed)  # the same batches for every model
    step_fn = TrainStep(model, cfg)
    windows = validation_windows(val, cfg)
    history = {"kind": model.kind, "steps": cfg.train_steps, "device": device_name(device),
               "device_record": device_record(device), "train_seed": cfg.train_seed,
               "precision": cfg.precision, "step": [],
               "wall_seconds": [], "train": {}, "val": {}, "val_next_frame_mse": []}
    # the terms of every step are summed on the device and read back only every READ_EVERY steps:
    # float64 (where the device has it), so the sums equal those of the per-step Python floats
    running = torch.zeros(len(TERMS), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
    since, checked = 0, 0
    wall = 0.0

    def check_finite(step: int) -> None:
        """Stop at the first read after a loss term stopped being finite (NaN/inf persist in the sum)."""
        nonlocal checked
        sums = running.tolist()
        bad = [k for k, v in zip(TERMS, sums) if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"{model.kind}: loss term(s) {bad} became {[v for k, v in zip(TERMS, sums) if k in bad]} "
                f"between step {checked + 1} and step {step}; training stopped (try a lower lr than {cfg.lr})."
            )
        checked = step

    def record(step: int) -> None:
        nonlocal since
        history["step"].append(step)
        history["wall_seconds"].append(wall)
        for k, v in zip(TERMS, running.tolist()):
            if since:
                history["train"].setdefault(k, []).append(v / since)
        for k, v in validation_loss(model, windows, cfg.seed).items():
            history["val"].setdefault(k, []).append(v)
        history["val_next_frame_mse"].append(next_frame_mse(model, windows))
        running.zero_()
        since = 0

    model.train()
    record(0)
    bar = progress_bar(range(1, cfg.train_steps + 1), desc=desc or f"training {model.kind}", disable=not progress)
    for step in bar:
        batch = train.sample(cfg.batch_size, cfg.seq_len, batches)
        sync(device)
        start = time.perf_counter()
        terms = step_fn(batch)
        sync(device)  # on a GPU the step runs asynchronously: wait for it, or the clock lies
        wall += time.perf_counter() - start
        running += terms
        since += 1
        logging = step % cfg.log_every == 0 or step == cfg.train_steps
        if step % READ_EVERY == 0 or logging:
            check_finite(step)
            now = dict(zip(TERMS, terms.tolist()))
            # kl: the raw KL(posterior || prediction); the token-prediction loss is the same number
            # once every latent is above the free-bits floor, so it is shown only when the floor lifts it
            post = {"recon": f"{now['recon_loss']:.1f}", "kl": f"{now['kl']:.2f}"}
            if now["dyn_loss"] - now["kl"] >= 0.005:
                post["kl_floored"] = f"{now['dyn_loss']:.2f}"
            bar.set_postfix(post, refresh=False)
        if logging:
            record(step)
    model.eval()
    history["train_seconds"] = wall
    history["ms_per_step"] = 1000.0 * wall / cfg.train_steps
    history["step_backend"] = step_fn.backend
    return history
