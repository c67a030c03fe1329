"""Every figure the notebook shows, as a matplotlib Figure sized for a 1000 px page (10 in); the
numbers a figure asks about come from a sibling function (`loss_trend`, `attention_on_newest_latent`).
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..evaluation.memory_verdict import final_scores
from ..models.masking import attention_mask

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
    w = min(10.0, 1.6 * n)  # 10 in: a 1000 px page; more frames get smaller
    fig, axes = _figure(w, 0.3 + 1.6 * w / (1.6 * n), ncols=n)
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
    w = min(10.0, 1.5 * n)
    fig, axes = _figure(w, 0.3 + 3.0 * w / (1.5 * n), ncols=n, nrows=2)
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


# What each loss term is, as an axis: (panel title, y-axis label with its unit, log scale?)
LOSS_AXES = {
    "dyn_loss": ("token-prediction loss\nmax(1, KL(posterior || prediction))", "nats per frame", False),
    "reward_loss": ("reward-prediction loss", "squared error (reward units²)", False),
    "recon_loss": ("reconstruction loss", "squared error summed over pixels, per frame", True),
    "cont_loss": ("continuation loss", "binary cross-entropy (nats)", False),
    "kl": ("KL(posterior || prediction)", "nats per frame", True),
    "total": ("total loss", "loss (sum of the weighted terms)", True),
}


def training_curves(histories: dict, terms=("dyn_loss", "reward_loss", "recon_loss"),
                    reward_constant: float | None = None) -> Figure:
    """Training (solid) and validation (dashed) curves of the LOSS_AXES terms vs gradient step;
    reward_constant: the reward loss of predicting 0 every step, drawn as a reference line."""
    terms = [(t, None) if isinstance(t, str) else tuple(t)[:2] for t in terms]
    fig, axes = _figure(min(10.0, 3.4 * len(terms)), 3.4, ncols=len(terms))  # 10 in: a 1000 px page
    for ax, (term, title) in zip(axes[0], terms):
        default_title, ylabel, log = LOSS_AXES.get(term, (term, "loss", False))
        for name, h in histories.items():
            c = MODEL_COLORS.get(name)
            if term in h["train"]:
                ax.plot(h["step"][1:], h["train"][term], color=c, label=f"{name} train")
            if term in h["val"]:
                ax.plot(h["step"], h["val"][term], color=c, ls="--", label=f"{name} validation")
        if term == "reward_loss" and reward_constant is not None:
            ref = ax.axhline(reward_constant, color="0.4", ls=":", lw=1.5,
                             label=f"predict 0 every step ({reward_constant:.4f})")
            ax.legend(handles=[ref], fontsize=8, loc="upper right")
        ax.set_title(title or default_title, fontsize=9)
        ax.set_xlabel("gradient step")
        ax.set_ylabel(ylabel, fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0, 0])
    return fig


def loss_trend(history: dict, terms=("dyn_loss", "kl", "recon_loss", "reward_loss"), split: str = "val") -> dict:
    """{term: {"first", "last", "min", "max", "step_of_min", "step_of_max"}} of one history's curves."""
    curves = history[split]
    steps = history["step"] if split == "val" else history["step"][1:]
    out = {}
    for term in terms:
        if term not in curves:
            continue
        v = np.asarray(curves[term], dtype=float)
        out[term] = {"first": float(v[0]), "last": float(v[-1]), "min": float(v.min()), "max": float(v.max()),
                     "step_of_min": int(steps[int(v.argmin())]), "step_of_max": int(steps[int(v.argmax())])}
    return out


def kl_curve(histories: dict, free_bits: float = 1.0, title: str | None = None) -> Figure:
    """Raw KL(posterior || prediction) per step in nats, with the free-bits floor (a curve at or under
    it: posterior collapse)."""
    fig, axes = _figure(6.0, 3.4)
    ax = axes[0, 0]
    for name, h in histories.items():
        ax.plot(h["step"][1:], h["train"]["kl"], color=MODEL_COLORS.get(name), label=f"{name} train")
        ax.plot(h["step"], h["val"]["kl"], color=MODEL_COLORS.get(name), ls="--", label=f"{name} validation")
    ax.axhline(free_bits, color="k", lw=1, ls=":", label=f"free bits ({free_bits:g} nat)")
    ax.set_yscale("log")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("KL (nats per frame)")
    ax.set_title(title or "KL(posterior || prediction) and the free-bits floor", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def _legend_below(fig: Figure, ax, ncols: int = 4) -> None:
    """One legend for the whole figure, under the axes, so it never covers a curve."""
    handles, labels = [], []
    for a in fig.axes:
        for h, label in zip(*a.get_legend_handles_labels()):
            if label not in labels and not label.startswith("predict 0"):
                handles.append(h)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)), fontsize=8)


# How each PSNR curve is drawn: (label suffix, line style, line width, marker, band alpha).
# psnr_vs_horizon draws with it and psnr_caption describes it, so the caption cannot drift.
PSNR_CURVES = {
    "mode": ("mode rollout", "-", 2.2, "o", 0.15),
    "sampled": ("mean of sampled rollouts", "-", 0.8, None, 0.0),
    "latent_hold": ("latent-hold", "--", 1.2, None, 0.08),
    "recon_ceiling": ("reconstruction ceiling", ":", 1.2, None, 0.0),
}


def _band(ax, x, curve, color, label, ls="-", marker=None, alpha=0.15, lw=1.5):
    m, ci = np.asarray(curve["mean"], dtype=float), np.asarray(curve["ci"], dtype=float)
    ax.plot(x, m, color=color, ls=ls, lw=lw, label=label, marker=marker,
            markevery=[h - 1 for h in MARKED if h <= len(x)])
    if alpha > 0:
        ax.fill_between(x, m - ci, m + ci, color=color, alpha=alpha, lw=0)


def psnr_vs_horizon(results: dict, metrics=("whole", "changed"), seeds: dict | None = None) -> Figure:
    """PSNR per imagined step, both models on the same axes (key: `psnr_caption`); `seeds`
    {name: {metric: {"mean", "ci", "n"}}} adds error bars over training seeds."""
    titles = {"whole": "whole-frame PSNR", "changed": "changed-pixel PSNR (where things move)"}
    fig, axes = _figure(min(10.0, 5.0 * len(metrics)), 4.4, ncols=len(metrics))
    x = np.asarray(results["horizons"])
    for ax, metric in zip(axes[0], metrics):
        for k, (name, curves) in enumerate(results["models"].items()):
            c = MODEL_COLORS.get(name)
            for curve, (suffix, ls, lw, marker, alpha) in PSNR_CURVES.items():
                if curve not in curves:
                    continue
                _band(ax, x, curves[curve][metric], c, f"{name} {suffix}", ls=ls, marker=marker, alpha=alpha, lw=lw)
            if seeds and name in seeds and metric in seeds[name]:
                sd = seeds[name][metric]
                n = sd.get("n")
                offset = 0.12 * (k - (len(results["models"]) - 1) / 2)
                over = f"{n} training seeds" if n else "training seeds"
                ax.errorbar(x + offset, sd["mean"], yerr=sd["ci"], fmt="s", ms=4, color=c, mfc="white",
                            capsize=3, lw=1, label=f"{name} mean over {over} (95 % t-interval)")
        for key, (label, color, ls) in BASELINE_STYLE.items():
            _band(ax, x, results["baselines"][key][metric], color, label, ls=ls, alpha=0.08)
        ax.set_xticks(x)
        ax.set_xlabel("imagined step (horizon)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(titles[metric], fontsize=10)
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0, 0], ncols=3)
    return fig


def psnr_caption(seeds: dict | None = None) -> str:
    """The key to `psnr_vs_horizon`, written from the same style table the plot is drawn with."""
    parts = ["Bold lines with markers: mode (argmax) rollouts, with a band for the 95 % CI over "
             "evaluation windows", "thin lines: the mean of sampled rollouts"]
    parts.append("dashed: each model's latent-hold baseline (its last context latent, repeated)")
    parts.append("dotted: each model's reconstruction ceiling at that step (its decoder on the true frame)")
    parts.append("grey: the model-free baselines (dotted: copy the last frame; dash-dot: mean of the context)")
    if seeds:
        parts.append("open squares with error bars: the mean over training seeds and its 95 % t-interval")
    return "; ".join(parts) + ". Blue: RSSM; orange: Transformer."


def gap_vs_horizon(runs: dict, a: str = "RSSM", b: str = "Transformer", this_seed=None,
                   metrics=("whole", "changed")) -> Figure:
    """b - a mode-rollout PSNR per imagined step (evaluation.gaps.gap_data), one panel per metric:
    each seed faint (this_seed dashed), the mean bold with its 95 % t-interval, zoomed to include 0."""
    from ..evaluation.gaps import METRIC_WORDS, gap_data

    data = gap_data(runs, a, b, metrics=metrics)
    color = MODEL_COLORS.get(b, "tab:orange")
    fig, axes = _figure(min(10.0, 5.0 * len(metrics)), 3.9, ncols=len(metrics))
    mine = None if this_seed is None else str(this_seed)
    for ax, metric in zip(axes[0], metrics):
        d = data[metric]
        x = np.asarray(d["horizons"])
        mean, ci = np.asarray(d["mean"], dtype=float), np.asarray(d["ci"], dtype=float)
        ax.axhline(0, color="k", lw=1.2, label="0: no difference")
        for seed, row in zip(d["seeds"], d["per_seed"]):
            if seed == mine:
                ax.plot(x, row, color="0.25", lw=1.2, ls="--", alpha=0.9, label=f"seed {seed} (this run)")
            else:  # one legend entry for all of them: _legend_below keeps the first of a label
                ax.plot(x, row, color="0.45", lw=0.9, alpha=0.45, label="each training seed")
        n = d["n"]
        if n > 1:
            ax.fill_between(x, mean - ci, mean + ci, color=color, alpha=0.18, lw=0)
            ax.errorbar(x, mean, yerr=ci, color=color, lw=2.2, marker="o", ms=4, capsize=3,
                        label=f"mean over {n} seeds, 95 % t-interval")
        else:
            ax.plot(x, mean, color=color, lw=2.2, marker="o", ms=4, label="the one seed (no interval)")
        lo = np.nanmin(np.concatenate([d["per_seed"].ravel(), mean - np.nan_to_num(ci), [0.0]]))
        hi = np.nanmax(np.concatenate([d["per_seed"].ravel(), mean + np.nan_to_num(ci), [0.0]]))
        pad = max(0.08 * (hi - lo), 0.02)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(x)
        ax.set_xlabel("imagined step (horizon)", fontsize=9)
        ax.set_ylabel(f"{b} − {a} PSNR (dB)", fontsize=9)
        ax.set_title(f"{METRIC_WORDS.get(metric, metric)}: above 0, {b} imagines better", fontsize=10)
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0, 0], ncols=4)
    return fig


def _device_label(history: dict) -> str:
    """What a history's wall clock was measured on, e.g. "cpu: AMD EPYC, 2 threads" ("1 thread")."""
    device = history.get("device", "unknown device")
    if isinstance(device, dict):  # a device record {type, name, threads}
        device = f"{device.get('type')}: {device.get('name')}"
    # histories recorded before device_name learned the singular say "1 threads"
    return re.sub(r"\b1 threads\b", "1 thread", str(device)).replace(" (projected)", "")


def device_tags(histories: dict) -> dict:
    """{full device label: short tag} ("cpu 1", "cpu 2", "cuda 1", in order of appearance): legends
    carry the tag, one caption line the full names, so no host's long CPU name can widen a legend."""
    tags: dict = {}
    for h in histories.values():
        for record in filter(None, (h.get("projected_from"), h)):  # where it trained, then where it is drawn
            full = _device_label(record)
            kind = full.split(":")[0]
            tags.setdefault(full, f"{kind} {sum(t.startswith(kind + ' ') for t in tags.values()) + 1}")
    return tags


def _plain_log_ticks(ax, axis: str = "y") -> None:
    """One plain-number label per tick on a log axis (30, 40 or 0.002, 0.003, not 3×10¹ and a
    second, minor label set): ticks at 1, 2, 5 × 10^k, or every integer (then half-integer)
    multiple when the axis spans too little of a decade for at least 3 of them."""
    lim = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    target = ax.yaxis if axis == "y" else ax.xaxis
    if lim[0] <= 0:
        return
    for subs in ((1.0, 2.0, 5.0), tuple(range(1, 10)), tuple(np.arange(1.0, 10.0, 0.5))):
        locator = LogLocator(base=10, subs=subs)
        ticks = [t for t in locator.tick_values(*lim) if lim[0] <= t <= lim[1]]
        if len(ticks) >= 3:
            break
    target.set_major_locator(locator)
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


# The two validation metrics of Section 5: (history key, y-axis label)
EFFICIENCY_METRICS = (  # (how to read it from a history, its axis label)
    (lambda h: h["val"]["total"], "validation loss (the model's own total)"),
    (lambda h: h["val_next_frame_mse"], "validation next-frame MSE (per pixel)"),
)


def efficiency(histories: dict) -> Figure:
    """Validation loss (top) and the architecture-neutral next-frame MSE (bottom), vs training
    wall-clock (left) and vs gradient step (right). Legends name each device by a short tag
    (device_tags) and one caption line the full names: wall clocks only compare on one device.

    Each model's loss is its own objective (the RSSM's prior and the Transformer's next-token head
    are different predictors), so the next-frame MSE, which decodes one-step predictions the same way
    for both, is shown beside it. A history made by `wallclock.project` (trained on another machine,
    placed on this device's time axis from a burst timed here) is drawn dashed and labelled projected.
    The step-0 record is left out: the untrained loss is ~100x the rest and would flatten the curves.
    """
    tags = device_tags(histories)
    fig, axes = _figure(10.0, 6.6, ncols=2, nrows=2)
    for name, h in histories.items():
        here = tags[_device_label(h)]
        projected = "projected_from" in h
        trained_on = tags[_device_label(h["projected_from"])] if projected else here
        first = 1 if h["step"][0] == 0 else 0
        for row, (read, ylabel) in enumerate(EFFICIENCY_METRICS):
            y, style = read(h)[first:], dict(color=MODEL_COLORS.get(name), marker=".")
            label = f"{name}, projected onto {here}: {h['ms_per_step']:.0f} ms/step" if projected else \
                f"{name} ({here})"
            axes[row, 0].plot(h["wall_seconds"][first:], y, ls="--" if projected else "-", label=label, **style)
            axes[row, 1].plot(h["step"][first:], y, label=f"{name} (trained on {trained_on})", **style)
            for col, xlabel in enumerate(("training wall-clock (s, validation excluded)", "gradient step")):
                ax = axes[row, col]
                ax.set(yscale="log", xlabel=xlabel, ylabel=ylabel)
                ax.grid(alpha=0.3, which="both")
                _plain_log_ticks(ax)
    for col in range(2):  # one legend per column, under it: never over a point (both rows share the labels)
        labels = dict(zip(*reversed(axes[1, col].get_legend_handles_labels())))
        axes[1, col].legend(labels.values(), labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                            frameon=False)
    axes[0, 0].set_title("same budget, vs time", fontsize=10)
    axes[0, 1].set_title("same budget, vs gradient step", fontsize=10)
    fig.supxlabel(textwrap.fill("; ".join(f"{tag} = {full}" for full, tag in tags.items()), 150), fontsize=8,
                  ha="left", x=0.01)
    return fig


def spread_steps(horizon: int) -> list[int]:
    """Imagined steps worth a column: dense early, where errors start, and always the last one,
    e.g. horizon 20 -> [1, 2, 3, 5, 7, 10, 15, 20]; horizon 10 -> [1, 2, 3, 5, 7, 10]."""
    return sorted({h for h in (1, 2, 3, 5, 7, 10, 15, 20, 30, 50) if h <= horizon} | {horizon})


def filmstrip_errors(truth: torch.Tensor, predictions: dict, context: int, steps=None,
                     show_context: int = 1) -> Figure:
    """The true frames, then per model a row of imagined frames over a row of error maps
    |prediction - truth| (one colour scale for all). truth [C+H, 3, 64, 64]; predictions {name: [H, ...]}."""
    H = truth.shape[0] - context
    steps = list(steps) if steps is not None else spread_steps(H)
    cols = [("ctx", context - show_context + i) for i in range(show_context)] + [("img", h) for h in steps]
    errors = {name: (p[: H].float() - truth[context:].float()).abs().mean(1) for name, p in predictions.items()}
    vmax = max(float(e[[h - 1 for h in steps]].max()) for e in errors.values()) if errors else 1.0
    rows = [("true frames", "frame", None)]
    for name in predictions:
        rows += [(name, "frame", name), (f"{name}\nerror", "error", name)]
    width = min(10.0, 1.05 * len(cols) + 1.0)  # 10 in = a 1000 px page at 100 dpi
    frame_in = (width - 1.0) / len(cols)
    fig, axes = _figure(width, (frame_in + 0.12) * len(rows) + 0.5, ncols=len(cols), nrows=len(rows))
    im = None
    for r, (label, kind, name) in enumerate(rows):
        for j, (what, t) in enumerate(cols):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if name is None:  # the true frames
                ax.imshow(_img(truth[t if what == "ctx" else context + t - 1]), interpolation="nearest")
            elif what == "ctx":
                ax.set_facecolor("0.92")  # the model observed the real frame here: nothing to show
            elif kind == "frame":
                ax.imshow(_img(predictions[name][t - 1]), interpolation="nearest")
            else:
                im = ax.imshow(errors[name][t - 1].cpu().numpy(), cmap="magma", vmin=0, vmax=vmax,
                               interpolation="nearest")
            if r == 0:
                ax.set_title(f"context {t + 1}/{context}" if what == "ctx" else f"step +{t}", fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    if im is not None:
        cb = fig.colorbar(im, ax=axes[:, -1], fraction=0.5, shrink=0.6, aspect=25)
        cb.set_label("|prediction − truth| (mean over RGB)", fontsize=8)
    fig.suptitle("the last real context frame, then open-loop imagination with the real actions; "
                 "under each model: where its pixels are wrong", fontsize=9)
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
    ax.set_title(f"dynamics only, batch {sweep['batch']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.supxlabel(textwrap.fill(f"measured on {sweep['device']}", 90), fontsize=8, ha="left", x=0.01)
    return fig


def _newest_query_attention(maps: torch.Tensor) -> np.ndarray:
    """[layers, tokens]: where the LAST token (the newest action a_t) attends, mean over heads
    of the first sequence. maps: [layers, B, heads, L, L] from TransformerDynamics.attention_maps."""
    return maps[:, 0, :, -1, :].float().mean(1).cpu().numpy()


def attention_on_newest_latent(maps: torch.Tensor) -> list[float]:
    """Per layer, the share of the newest action token's attention (mean over heads) on the newest
    latent z_t, the token just before it (near 1: that layer mostly reads the current frame)."""
    return [float(v) for v in _newest_query_attention(maps)[:, -2]]


def attention_map(maps: torch.Tensor, steps_context: int | None = None) -> Figure:
    """TWM-style figure: for each layer (rows), where the LAST action token attends (mean over
    heads) over the interleaved tokens (columns), on one imagined sequence."""
    last = _newest_query_attention(maps)
    layers, L = last.shape
    fig, axes = _figure(min(10.0, max(6.0, 0.26 * L + 1.5)), 1.6 + 0.55 * layers)
    ax = axes[0, 0]
    im = ax.imshow(last, aspect="auto", cmap="viridis", vmin=0)
    labels = [f"{'z' if p % 2 == 0 else 'a'}{p // 2}" for p in range(L)]
    ax.set_xticks(range(L), labels, fontsize=8, rotation=90)
    ax.set_yticks(range(layers), [f"layer {i + 1}" for i in range(layers)], fontsize=9)
    ax.set_xlabel("key token (z: latent of a frame, a: action; index = time step)", fontsize=9)
    if steps_context is not None:
        ax.axvline(2 * steps_context - 0.5, color="w", ls="--", lw=1)
    ax.set_title("where the newest action token looks (mean over heads); right of the dashed line: imagined",
                 fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    cb.set_label("attention weight\n(mean over heads)", fontsize=8)
    return fig


# ---- Section 6: where the backbone matters ----------------------------------------------------------
MEMORY_STYLE = {"RSSM": ("tab:blue", "o"), "Transformer, full window": ("tab:orange", "s"),
                "Transformer, main window": ("tab:red", "^")}
LOAD_WORDS = {"identify": "identify: one of a few cues (fraction named right)",
              "copy": "copy: any frame (fraction of its 32 tokens right)"}


def markov_gain(markov: dict) -> Figure:
    """PSNR change when each model observes only the last K real frames, relative to the longest K
    (per window, mean over horizons), with the 95 % t-interval over windows as a band."""
    ks = markov["ks"]
    fig, axes = _figure(6.5, 3.2)
    ax = axes[0, 0]
    for name, d in markov["delta"].items():
        m, ci = np.asarray(d["mean"]), np.nan_to_num(np.asarray(d["ci"]))
        ax.plot(ks, m, marker="o", color=MODEL_COLORS.get(name), label=name)
        ax.fill_between(ks, m - ci, m + ci, color=MODEL_COLORS.get(name), alpha=0.2, lw=0)
    ax.axhline(0, color="0.4", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("K: real context frames observed")
    ax.set_ylabel(f"PSNR change vs K = {ks[-1]} (dB)")
    hs = ", ".join(map(str, markov["horizons"]))
    ax.set_title(f"{markov['n_windows']} held-out windows, PSNR averaged over h = {hs}; band: 95 % t-interval",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def _load_panels(runs: dict, height: float):
    """One panel per cue-recall load: (fig, [(ax, load, info), ...]) with info the first run's record."""
    loads = next(iter(runs.values()))["loads"]
    fig, axes = _figure(10.0, height, ncols=len(loads))
    return fig, [(axes[0, j], load, info) for j, (load, info) in enumerate(loads.items())]


def memory_recall(runs: dict, window_steps: int) -> Figure:
    """Recall against the gap, one panel per load: per condition the mean over seeds (line), each
    seed's score (small points), the control (dashed: the cue shown again), the measured chance."""
    fig, panels = _load_panels(runs, 3.6)
    for ax, load, info in panels:
        gaps = np.asarray(info["gaps"], dtype=float)
        for k, cond in enumerate(info["models"]):
            color, marker = MEMORY_STYLE.get(cond, ("0.3", "o"))
            mem, ctl = final_scores(runs, load, cond), final_scores(runs, load, cond, "control")
            x = gaps + (k - 1) * 0.35  # side by side, so the seeds' points do not hide each other
            ax.scatter(np.repeat(x[None], len(mem), 0), mem, s=9, color=color, alpha=0.45, lw=0)
            ax.plot(x, mem.mean(0), color=color, marker=marker, label=cond)
            ax.plot(x, ctl.mean(0), color=color, ls="--", lw=1)
        chance = np.mean([r["loads"][load]["chance"] for r in runs.values()])
        ax.axhline(chance, color="0.3", ls=":", lw=1.2, label="chance (best constant guess)")
        ax.axvline(window_steps + 0.5, color="k", ls="-.", lw=1, label="main window (one layer)")
        ax.plot([], [], color="0.4", ls="--", lw=1, label="control: cue shown again")
        ax.set_xlabel("gap between cue and recall (steps)")
        ax.set_ylabel("recall after training")
        ax.set_ylim(0, 1.02)
        ax.set_title(LOAD_WORDS.get(load, load), fontsize=9)
        ax.grid(alpha=0.3)
    _legend_below(fig, panels[0][0], ncols=3)
    fig.suptitle(f"{len(runs)} seed(s): line = mean, points = each seed", fontsize=10)
    return fig


def memory_learning(runs: dict, window_steps: int, budget: dict | None = None) -> Figure:
    """Learning curves, one panel per load: recall (memory condition) averaged over the gaps beyond
    the main window against training steps; thick: mean over seeds, thin: each seed. budget:
    {load: steps} drawn as a vertical line (e.g. the notebook's budget on longer runs)."""
    fig, panels = _load_panels(runs, 3.4)
    for ax, load, info in panels:
        beyond = [i for i, g in enumerate(info["gaps"]) if g > window_steps]
        for cond in info["models"]:
            color, marker = MEMORY_STYLE.get(cond, ("0.3", "o"))
            steps = info["models"][cond]["step"]
            curves = np.array([np.asarray(r["loads"][load]["models"][cond]["memory"])[:, beyond].mean(1)
                               for r in runs.values()])  # [seeds, points]
            for c in curves:
                ax.plot(steps, c, color=color, lw=0.6, alpha=0.4)
            ax.plot(steps, curves.mean(0), color=color, marker=marker, lw=2, label=cond)
        ax.axhline(np.mean([r["loads"][load]["chance"] for r in runs.values()]), color="0.3", ls=":", lw=1.2,
                   label="chance (best constant guess)")
        if budget and load in budget:
            ax.axvline(budget[load], color="k", ls="-.", lw=1, label="this notebook's budget")
        ax.set_xlabel("training steps (dynamics only, frozen tokens)")
        ax.set_ylabel(f"recall, gaps {', '.join(str(info['gaps'][i]) for i in beyond)}")
        ax.set_ylim(0, 1.02)
        ax.set_title(load, fontsize=10)
        ax.grid(alpha=0.3)
    _legend_below(fig, panels[0][0], ncols=4)
    return fig
