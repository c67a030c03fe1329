"""Every figure the notebook shows. Each function returns the matplotlib Figure; no backend is forced."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

MODEL_COLORS = {"RSSM": "tab:blue", "Transformer": "tab:orange"}
BASELINE_STYLE = {"copy_last": ("copy last frame", "0.35", ":"), "context_mean": ("mean of context", "0.6", "-.")}
MARKED = (1, 3, 5, 10)


def _figure(w: float, h: float, ncols: int = 1, nrows: int = 1, **kw):
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _img(x: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> H x W x 3 array for imshow."""
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def show_frames(frames: torch.Tensor, titles=None, title: str | None = None) -> Figure:
    """A row of frames [N, 3, H, W]."""
    n = len(frames)
    fig, axes = _figure(1.6 * n, 1.9, ncols=n)
    for i, ax in enumerate(axes[0]):
        ax.imshow(_img(frames[i]), interpolation="nearest")
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def reconstructions(truth: torch.Tensor, recon: torch.Tensor, title: str = "validation frames") -> Figure:
    """Two rows: true frames, and the autoencoder's reconstructions of them."""
    n = len(truth)
    fig, axes = _figure(1.5 * n, 3.3, ncols=n, nrows=2)
    for i in range(n):
        for row, (x, label) in enumerate(((truth, "true"), (recon, "decoded token"))):
            axes[row, i].imshow(_img(x[i]), interpolation="nearest")
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
            if i == 0:
                axes[row, i].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def causal_mask(steps: int = 4, window: int | None = None) -> Figure:
    """The attention mask over the interleaved tokens z_0, a_0, z_1, a_1, ... (white: may attend)."""
    from .transformer import attention_mask

    L = 2 * steps
    pos = torch.arange(L)
    mask = attention_mask(pos, pos, window or L).numpy()
    labels = [f"{'z' if p % 2 == 0 else 'a'}{p // 2}" for p in range(L)]
    fig, axes = _figure(4.2, 3.8)
    ax = axes[0, 0]
    ax.imshow(mask, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks(range(L), labels)
    ax.set_yticks(range(L), labels)
    ax.set_xlabel("key (attended token)")
    ax.set_ylabel("query (token being computed)")
    for p in range(1, L, 2):
        ax.axhline(p, color="tab:orange", lw=8, alpha=0.25)
    ax.set_title("causal mask; orange rows: action tokens,\nwhere next latent, reward and cont are read", fontsize=9)
    return fig


def training_curves(histories: dict, terms=(("dyn_loss", "token-prediction loss (dyn KL, nats)"),
                                            ("reward_loss", "reward-prediction loss (MSE)"),
                                            ("recon_loss", "reconstruction loss"))) -> Figure:
    """Training (solid) and validation (dashed) curves of the named loss terms vs gradient step."""
    fig, axes = _figure(4.0 * len(terms), 3.2, ncols=len(terms))
    for ax, (term, label) in zip(axes[0], terms):
        for name, h in histories.items():
            c = MODEL_COLORS.get(name)
            steps = h["step"]
            if term in h["train"]:
                ax.plot(steps[1:], h["train"][term], color=c, label=f"{name} train")
            if term in h["val"]:
                ax.plot(steps, h["val"][term], color=c, ls="--", label=f"{name} val")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("gradient step")
        if term == "recon_loss":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    return fig


def kl_curve(histories: dict, free_bits: float = 1.0) -> Figure:
    """Raw KL(posterior || prediction) per step in nats, with the free-bits floor: a curve that
    stays at or under the floor means posterior collapse (the latent carries no information)."""
    fig, axes = _figure(5.0, 3.2)
    ax = axes[0, 0]
    for name, h in histories.items():
        ax.plot(h["step"][1:], h["train"]["kl"], color=MODEL_COLORS.get(name), label=f"{name} (train)")
        ax.plot(h["step"], h["val"]["kl"], color=MODEL_COLORS.get(name), ls="--", label=f"{name} (val)")
    ax.axhline(free_bits, color="k", lw=1, ls=":", label=f"free bits ({free_bits:g} nat)")
    ax.set_yscale("log")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("KL (nats per frame)")
    ax.set_title("no posterior collapse: KL well above the free-bits floor", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def _band(ax, x, curve, color, label, ls="-", marker=None, alpha=0.15, lw=1.5):
    m, ci = np.asarray(curve["mean"]), np.asarray(curve["ci"])
    ax.plot(x, m, color=color, ls=ls, lw=lw, label=label, marker=marker,
            markevery=[h - 1 for h in MARKED if h <= len(x)])
    ax.fill_between(x, m - ci, m + ci, color=color, alpha=alpha, lw=0)


def psnr_vs_horizon(results: dict, metrics=("whole", "changed"), show_sampled: bool = True) -> Figure:
    """PSNR per imagined step for both models (mode rollouts: bold with markers and CI bands; mean of
    sampled rollouts: thin), their latent-hold baselines (dashed), reconstruction ceilings (dotted,
    flat), and the model-free baselines (grey)."""
    titles = {"whole": "whole-frame PSNR", "changed": "changed-pixel PSNR (where things move)"}
    fig, axes = _figure(6.0 * len(metrics), 4.3, ncols=len(metrics))
    x = np.asarray(results["horizons"])
    for ax, metric in zip(axes[0], metrics):
        for name, curves in results["models"].items():
            c = MODEL_COLORS.get(name)
            _band(ax, x, curves["mode"][metric], c, f"{name} (mode)", marker="o", lw=2.2)
            if show_sampled:
                _band(ax, x, curves["sampled"][metric], c, f"{name} (mean of sampled rollouts)", alpha=0.0, lw=0.8)
            _band(ax, x, curves["latent_hold"][metric], c, f"{name} latent-hold", ls="--", alpha=0.08)
            ceil = np.mean(curves["recon_ceiling"][metric]["mean"])
            ax.axhline(ceil, color=c, ls=":", lw=1, label=f"{name} reconstruction ceiling")
        for key, (label, color, ls) in BASELINE_STYLE.items():
            _band(ax, x, results["baselines"][key][metric], color, label, ls=ls, alpha=0.08)
        ax.set_xticks(x)
        ax.set_xlabel("imagined step (horizon)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(titles[metric], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    return fig


def efficiency(histories: dict, metric_label: str = "validation next-frame MSE") -> Figure:
    """The neutral validation metric vs training wall-clock seconds (left) and vs gradient step (right)."""
    fig, axes = _figure(11.0, 3.8, ncols=2)
    for name, h in histories.items():
        c = MODEL_COLORS.get(name)
        axes[0, 0].plot(h["wall_seconds"], h["val_next_frame_mse"], color=c, marker=".", label=name)
        axes[0, 1].plot(h["step"], h["val_next_frame_mse"], color=c, marker=".", label=name)
    for ax, xlabel in zip(axes[0], ("training wall-clock (s, validation excluded)", "gradient step")):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0, 0].set_title("same budget, vs time", fontsize=10)
    axes[0, 1].set_title("same budget, vs step", fontsize=10)
    return fig


def filmstrip(truth: torch.Tensor, predictions: dict, context: int, horizons=None) -> Figure:
    """Rows: ground truth, then one row per model. Columns: the last context frames then the imagined steps."""
    T = truth.shape[0]
    show_ctx = min(2, context)
    cols = list(range(context - show_ctx, T))
    rows = [("ground truth", truth, None)] + [(name, p, context) for name, p in predictions.items()]
    fig, axes = _figure(1.05 * len(cols), 1.2 * len(rows) + 0.4, ncols=len(cols), nrows=len(rows))
    for r, (label, frames, offset) in enumerate(rows):
        for j, t in enumerate(cols):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if offset is None or t >= offset:
                img = frames[t] if offset is None else frames[t - offset]
                ax.imshow(_img(img), interpolation="nearest")
            else:
                ax.set_facecolor("0.9")
            if r == 0:
                ax.set_title(f"ctx {t - context + 1}" if t < context else f"+{t - context + 1}", fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("context (real frames), then open-loop imagination with the real actions", fontsize=9)
    return fig


def attention_cost(sweep: dict) -> Figure:
    """Dynamics-only training step time vs sequence length for the Transformer and the GRU."""
    fig, axes = _figure(5.5, 3.6)
    ax = axes[0, 0]
    lens = sweep["seq_lens"]
    for name, key, c in (("Transformer (attention)", "transformer_ms", "tab:orange"),
                         ("RSSM (GRU)", "gru_ms", "tab:blue")):
        ax.plot(lens, sweep[key], marker="o", color=c, label=name)
    ax.axvline(sweep.get("used_seq_len", 16), color="k", ls=":", lw=1, label="length used here")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (time steps; the Transformer sees 2 tokens per step)")
    ax.set_ylabel("ms per dynamics training step")
    ax.set_title(f"dynamics only, batch {sweep['batch']}, {sweep['device']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def attention_map(maps: torch.Tensor, steps_context: int | None = None) -> Figure:
    """TWM-style figure: for each layer (rows), where the LAST action token attends (head average)
    over the interleaved tokens (columns), on one imagined sequence."""
    last = maps[:, 0, :, -1, :].mean(1).cpu().numpy()  # [layers, tokens]
    L = last.shape[1]
    fig, axes = _figure(max(6.0, 0.22 * L), 1.0 + 0.5 * last.shape[0])
    ax = axes[0, 0]
    im = ax.imshow(last, aspect="auto", cmap="viridis")
    labels = [f"{'z' if p % 2 == 0 else 'a'}{p // 2}" for p in range(L)]
    ax.set_xticks(range(L), labels, fontsize=6, rotation=90)
    ax.set_yticks(range(last.shape[0]), [f"layer {i + 1}" for i in range(last.shape[0])])
    if steps_context is not None:
        ax.axvline(2 * steps_context - 0.5, color="w", ls="--", lw=1)
    ax.set_title("attention of the newest action token (mean over heads); right of the dashed line: imagined",
                 fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.02)
    return fig
