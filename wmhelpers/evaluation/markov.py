"""The Markov check (Section 6): how much PSNR do the trained world models gain from real frames
older than the last K? Each model observes only the last K context frames, then imagines with the
real actions as in Section 4; a window's score is its whole-frame PSNR averaged over `horizons`, and
the answer is the per-window change against the longest K with its 95 % t-interval over windows: a
statement about these trained models, not about the game. (Cutting the attention window would not
cut the past: each layer reads the previous layer's outputs, which looked a window further back.)
"""

from __future__ import annotations

import numpy as np
import torch

from .psnr import psnr
from .stats import interval


@torch.no_grad()
def markov_check(models: dict, windows: dict, cfg, ks=(1, 2, 4, 8), horizons=(1, 5, 10), batch: int = 32) -> dict:
    """windows: {"obs" [N, C+H, 3, 64, 64] float, "action" [N, C+H]} (evaluation windows, context C).

    Returns {"ks", "horizons", "n_windows", "psnr": {model: [[mean dB per horizon] per K]},
    "delta": {model: {"mean", "ci", "n"}: per K, the per-window PSNR (mean over horizons) minus
    that with the longest K}}."""
    C, H = cfg.context, max(horizons)
    if max(ks) > C:
        raise ValueError(f"K up to {max(ks)} needs at least that many context frames; context is {C}")
    out = {"ks": list(ks), "horizons": list(horizons), "n_windows": int(windows["obs"].shape[0]), "psnr": {},
           "delta": {}}
    for name, model in models.items():
        model.eval()
        dev = model.device
        per_k = []  # [K][N, horizons]
        for k in ks:
            scores = []
            for i in range(0, windows["obs"].shape[0], batch):
                obs = windows["obs"][i:i + batch].to(dev)
                act = windows["action"][i:i + batch].to(dev)
                state = model.observe(obs[:, C - k:C], act[:, C - k:C - 1])  # only the last k real frames
                imagined = model.imagine(state, act[:, C - 1:C - 1 + H])
                frames = model.decode(imagined["latent"][:, [h - 1 for h in horizons]])
                scores.append(psnr(frames, obs[:, [C - 1 + h for h in horizons]]).cpu())
            per_k.append(torch.cat(scores).double().numpy())
        out["psnr"][name] = [s.mean(0).tolist() for s in per_k]
        window_score = np.stack([s.mean(1) for s in per_k], 1)  # [N, K]
        st = interval(window_score - window_score[:, -1:])
        out["delta"][name] = {key: st[key].tolist() for key in ("mean", "ci", "n")}
    return out
