"""A reward ceiling from real frames: a small CNN predicts the sign of r_t from (o_t-1, o_t, a_t)
("before": what a reward head sees) or (o_t, o_t+1) ("after"), scored as AUPRC of P(r_t != 0).
`python -m wmhelpers reward-probe` writes checkpoints/reward_probe.json; the notebook only reads it.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ExperimentConfig
from ..data import to_float_frames
from ..device import device_name
from ..evaluation.results import write_json
from ..evaluation.reward import average_precision
from ..progress import progress_bar


class FrameClassifier(nn.Module):
    """Two stacked RGB frames (6 channels, 64x64) and an action -> logits of sign(r) (3 classes)."""

    def __init__(self, num_actions: int, width: int = 16):
        super().__init__()
        layers, c = [], 6
        for w in (width, width, 2 * width, 2 * width):
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.GroupNorm(1, w), nn.SiLU()]
            c = w
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.action = nn.Embedding(num_actions, 64)
        self.head = nn.Sequential(nn.Linear(c * 16 + 64, 128), nn.SiLU(), nn.Linear(128, 3))

    def forward(self, frames: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(frames), self.action(action)], -1))


def _pairs(dataset, view: str) -> dict:
    """Rows t with both frames of the view inside one episode: {"a": rows of the first frame,
    "b": rows of the second, "t": the reward's row}."""
    ep = dataset.arrays["episode"]
    t = np.arange(1, len(ep) - 1)
    if view == "before":  # (o_t-1, o_t, a_t) -> r_t
        ok = ep[t - 1] == ep[t]
        return {"a": t[ok] - 1, "b": t[ok], "t": t[ok]}
    ok = (ep[t] == ep[t + 1]) & ~dataset.arrays["terminated"][t] & ~dataset.arrays["truncated"][t]
    return {"a": t[ok], "b": t[ok] + 1, "t": t[ok]}  # (o_t, o_t+1) -> r_t


def _batch(dataset, pairs: dict, rows: np.ndarray) -> tuple:
    obs = dataset.arrays["obs"]
    x = np.concatenate([obs[pairs["a"][rows]], obs[pairs["b"][rows]]], axis=-1)  # [B, 64, 64, 6]
    frames = to_float_frames(x)
    action = torch.from_numpy(dataset.arrays["action"][pairs["t"][rows]].astype(np.int64))
    reward = dataset.arrays["reward"][pairs["t"][rows]]
    return frames, action, torch.from_numpy(np.sign(reward).astype(np.int64) + 1)


def probe_view(train, val, view: str, steps: int, batch: int, seed: int, progress: bool = True) -> dict:
    """Train one classifier on `train` for a view and score AUPRC of P(r != 0) on every `val` step.

    Batches are half steps with a reward, half without (rewards are ~3 % of steps, so plain batches
    would hold ~4 events); the evaluation uses the natural mix."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr, va = _pairs(train, view), _pairs(val, view)
    events = np.flatnonzero(train.arrays["reward"][tr["t"]] != 0)
    quiet = np.flatnonzero(train.arrays["reward"][tr["t"]] == 0)
    model = FrameClassifier(train.num_actions)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in progress_bar(range(steps), desc=f"reward probe ({view})", disable=not progress):
        rows = np.concatenate([rng.choice(events, batch // 2), rng.choice(quiet, batch - batch // 2)])
        frames, action, target = _batch(train, tr, rows)
        loss = F.cross_entropy(model(frames, action), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    scores = []
    with torch.no_grad():
        for i in range(0, len(va["t"]), 512):
            frames, action, _ = _batch(val, va, np.arange(i, min(i + 512, len(va["t"]))))
            scores.append(1 - model(frames, action).softmax(-1)[:, 1])  # P(r != 0)
    truth = val.arrays["reward"][va["t"]] != 0
    return {"auprc": average_precision(torch.cat(scores).numpy(), truth), "prevalence": float(truth.mean()),
            "n": int(len(truth))}


def run_reward_probe(cfg: ExperimentConfig, steps: int = 600, batch: int = 64, out=None,
                     progress: bool = True) -> dict:
    """Both views, written to <checkpoint_dir>/reward_probe.json."""
    from ..data import load_or_collect

    data = load_or_collect(cfg, progress=progress, verbose=progress)
    train, val = data.split(cfg)
    t0 = time.perf_counter()
    before = probe_view(train, val, "before", steps, batch, cfg.seed, progress)
    after = probe_view(train, val, "after", steps, batch, cfg.seed, progress)
    doc = {"auprc_before": before["auprc"], "auprc_after": after["auprc"], "prevalence": before["prevalence"],
           "n": before["n"], "steps": steps, "batch": batch, "data_fingerprint": data.fingerprint(),
           "seconds": time.perf_counter() - t0, "device": device_name(torch.device("cpu")),
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    path = write_json(out or Path(cfg.checkpoint_dir) / "reward_probe.json", doc)
    print(f"Wrote {path}: AUPRC before {before['auprc']:.3f}, after {after['auprc']:.3f}, "
          f"prevalence {before['prevalence']:.3f}", flush=True)
    return doc


def load_probe(path, data=None) -> dict | None:
    """The shipped probe result, or None when it is missing or was made for other data."""
    import json

    path = Path(path)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if data is not None and doc.get("data_fingerprint") != data.fingerprint():
        return None
    return doc
