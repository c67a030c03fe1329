"""One token per frame, made concrete: why the token is 32 indices, not one.

One categorical of 32 classes is 5 bits: the decoder can draw at most 32 pictures. 32 categoricals
of 32 classes (this project's, STORM's, DreamerV3's token) are 160 bits. `one_token_demo` trains a
1 x 32 and a 32 x 32 CategoricalVAE on the same mean-centred frames and scores their
reconstructions (whole frame and boxer pixels); `best_one_index_pictures` gives what one index
could do at best: the 32 k-means centroids of the training frames.
"""

from __future__ import annotations

import math
import textwrap
import time

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data import to_float_frames
from ..evaluation.psnr import masked_psnr, psnr
from ..models.vae import CategoricalVAE

SHAPES = {"one index (1 x 32)": (1, 32), "32 indices (32 x 32, the shipped token)": (32, 32)}
BEST_ONE_INDEX = "best possible one index (32 k-means pictures)"


def sample_frames(dataset, n: int, seed: int = 0) -> torch.Tensor:
    """n random frames [n, 3, 64, 64] in [0, 1] from an EpisodeDataset (rows chosen by `seed`)."""
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=min(n, len(dataset)), replace=False))
    return to_float_frames(dataset.arrays["obs"][rows])


def train_vae(frames: torch.Tensor, latent_vars: int, latent_classes: int, steps: int = 800,
              max_seconds: float = 14.0, batch: int = 16, lr: float = 3e-3, seed: int = 0,
              conv_widths=(8, 16, 32, 64)):
    """A CategoricalVAE trained on the (centred) frames for `steps` Adam steps or `max_seconds`,
    whichever comes first -> (vae in eval mode, {"steps", "seconds", "final_loss"})."""
    torch.manual_seed(seed)
    vae = CategoricalVAE(conv_widths, latent_vars, latent_classes, unimix=0.01, frame_size=frames.shape[-1])
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    start, done, loss = time.perf_counter(), 0, float("nan")
    while done < max(1, steps) and (done == 0 or time.perf_counter() - start < max_seconds):
        idx = torch.randint(len(frames), (batch,), generator=order)
        recon, _ = vae.loss(frames[idx])
        opt.zero_grad(set_to_none=True)
        recon.backward()
        opt.step()
        done, loss = done + 1, float(recon.detach())
    vae.eval()
    return vae, {"steps": done, "seconds": time.perf_counter() - start, "final_loss": loss}


@torch.no_grad()
def best_one_index_pictures(train_frames: torch.Tensor, classes: int = 32, iters: int = 10,
                            seed: int = 0) -> torch.Tensor:
    """The `classes` pictures a one-index token could best name: k-means centroids [classes, 3, H, W]
    of the training frames (Lloyd's algorithm, squared error; an emptied cluster is re-seeded
    with the frame currently worst served, so all `classes` pictures are used)."""
    x = train_frames.flatten(1)
    gen = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=gen)[:classes]].clone()
    for _ in range(iters):
        dist = torch.cdist(x, centroids)
        assign = dist.argmin(1)
        for k in range(classes):
            members = x[assign == k]
            if len(members):
                centroids[k] = members.mean(0)
            else:
                centroids[k] = x[dist.min(1).values.argmax()]
    return centroids.view(classes, *train_frames.shape[1:])


def nearest_picture(frames: torch.Tensor, pictures: torch.Tensor) -> torch.Tensor:
    """Each frame replaced by the closest of `pictures` (what decoding a one-index token can give)."""
    idx = torch.cdist(frames.flatten(1), pictures.flatten(1)).argmin(1)
    return pictures[idx]


@torch.no_grad()
def one_token_demo(train_frames: torch.Tensor, test_frames: torch.Tensor, seconds: float = 24.0,
                   steps: int = 800, shapes: dict | None = None, foreground_threshold: float = 0.1,
                   **train_kwargs) -> dict:
    """Train one CategoricalVAE per latent shape (`steps` each, `seconds` in all) and score their mode
    reconstructions of the held-out `test_frames`. Returns {"frames", "mean_frame", "seconds",
    "mean_frame_psnr", "mean_frame_boxer_psnr", "models": {name: {"vars", "classes", "bits", "recon",
    "mse", "psnr", "boxer_psnr", "codes_used", "steps", "seconds", "final_loss"}}}, with
    BEST_ONE_INDEX: each frame drawn as the nearest of the 32 k-means pictures."""
    start = time.perf_counter()
    shapes = SHAPES if shapes is None else shapes
    mean = train_frames.mean(0)
    boxers = boxer_pixels(test_frames, mean, foreground_threshold)
    flat_mean = _scores(mean.expand_as(test_frames), test_frames, boxers)
    out = {"frames": test_frames, "mean_frame": mean, "mean_frame_psnr": flat_mean["psnr"],
           "mean_frame_boxer_psnr": flat_mean["boxer_psnr"], "foreground_threshold": foreground_threshold,
           "models": {}}
    # the quick part first, so the VAEs get whatever is left of `seconds`
    K = next((K for V, K in shapes.values() if V == 1), 32)
    recon = nearest_picture(test_frames, best_one_index_pictures(train_frames, K))
    out["models"][BEST_ONE_INDEX] = _entry(recon, test_frames, boxers, 1, K, torch.unique(recon.flatten(1), dim=0))
    left = max(0.0, seconds - (time.perf_counter() - start))
    for name, (V, K) in shapes.items():
        with torch.enable_grad():
            vae, info = train_vae(train_frames - mean, V, K, steps=steps, max_seconds=left / len(shapes),
                                  **train_kwargs)
        z = vae.encode(test_frames - mean)
        recon = (vae.decode_mean(z) + mean).clamp(0, 1)  # the VAE draws the difference from the mean frame
        out["models"][name] = _entry(recon, test_frames, boxers, V, K, torch.unique(z, dim=0), **info)
    out["seconds"] = time.perf_counter() - start
    return out


def boxer_pixels(frames: torch.Tensor, mean: torch.Tensor, threshold: float) -> torch.Tensor:
    """[M, 1, 64, 64] mask of the pixels that differ from the mean frame by more than `threshold`."""
    return (frames - mean).abs().amax(-3, keepdim=True) > threshold


def _scores(recon: torch.Tensor, frames: torch.Tensor, boxers: torch.Tensor) -> dict:
    return {"mse": float((recon - frames).pow(2).mean()), "psnr": float(psnr(recon, frames).mean()),
            "boxer_psnr": float(masked_psnr(recon, frames, boxers).nanmean())}


def _entry(recon, frames, boxers, V: int, K: int, codes: torch.Tensor, **info) -> dict:
    """One model's row of the result: its token's size, its reconstructions and their scores."""
    return {"vars": V, "classes": K, "bits": V * math.log2(K), "recon": recon, **_scores(recon, frames, boxers),
            "codes_used": len(codes), **info}


@torch.no_grad()
def add_trained(result: dict, trained: dict) -> dict:
    """A copy of a `one_token_demo` result with VAEs trained elsewhere scored on its held-out frames
    (the same frames and boxer pixels, no training here): e.g. after Section 3,
    {"32 indices, trained in the world model": tf.vae}, the 32 x 32 token with a full budget."""
    frames = result["frames"]
    boxers = boxer_pixels(frames, result["mean_frame"], result["foreground_threshold"])
    models = dict(result["models"])
    for name, vae in trained.items():
        was_training = vae.training
        vae.eval()
        z = vae.encode(frames.to(next(vae.parameters()).device))
        recon = vae.decode(z).float().cpu()
        vae.train(was_training)
        models[name] = _entry(recon, frames, boxers, vae.latent_vars, vae.latent_classes, torch.unique(z, dim=0))
    return dict(result, models=models)


def plot_one_token_demo(result: dict, n: int = 6) -> Figure:
    """Rows: held-out true frames, then each reconstruction (fewest bits first), labelled with its
    bits, whole-frame PSNR and boxer-pixel PSNR; columns: n frames."""
    frames = result["frames"][:n]
    # fewest bits first; within equal bits the VAE trained here before the reference beside it
    order = sorted(result["models"].items(), key=lambda item: (item[1]["bits"], "steps" not in item[1]))
    rows = [("true frames", frames)] + [
        (f"{textwrap.fill(name, 22)}\n{m['bits']:.0f} bits: {m['psnr']:.1f} dB\nboxers: {m['boxer_psnr']:.1f} dB",
         m["recon"][:n]) for name, m in order]
    fig = Figure(figsize=(1.45 * len(frames) + 2.0, 1.5 * len(rows) + 0.5), layout="constrained")
    axes = fig.subplots(len(rows), len(frames), squeeze=False)
    for r, (label, x) in enumerate(rows):
        for j in range(len(frames)):
            ax = axes[r, j]
            ax.imshow(x[j].clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    steps = " and ".join(str(m["steps"]) for m in result["models"].values() if "steps" in m)
    raced = f"; VAEs trained here for {steps} steps" if steps else ""
    fig.suptitle(f"held-out frames through one index (5 bits) and 32 indices (160 bits){raced}; "
                 f"the mean frame alone scores {result['mean_frame_psnr']:.1f} dB, boxers "
                 f"{result['mean_frame_boxer_psnr']:.1f} dB", fontsize=9)
    return fig
