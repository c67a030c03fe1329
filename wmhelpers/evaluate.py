"""Open-loop rollout evaluation: PSNR per horizon for every model and every baseline.

Protocol (identical for every model): the same N fixed validation windows of C + H frames, cut
from the validation episodes without overlap; each model observes the first C frames and the
C-1 actions between them, then imagines H steps open-loop with the real actions; predicted
latents are decoded and compared with the true frames. Two scores per window and horizon step:
    whole-frame PSNR     10 log10(1 / MSE) over all pixels
    changed-pixel PSNR   the same over only the pixels whose true value differs from the last
                         context frame by more than cfg.changed_threshold (in any channel):
                         where the boxers move, i.e. where the dynamics live.
Per-window PSNR is capped at PSNR_CAP_DB (the 8-bit quantization limit, 58.9 dB), and each
curve also reports the PSNR of its mean MSE and how many windows hit the cap.
Baselines on the same windows: copy the last context frame; the mean of the context frames;
per model: latent-hold (decode the last context latent, repeated: no dynamics), the
reconstruction ceiling (decode the posterior of the true frame: no prediction at all) and the
teacher-forced one-step prediction (real frames up to t, so the teacher-forcing gap shows).
Means come with 95 % t-intervals over windows (window noise for one trained model only).
"""

from __future__ import annotations

import hashlib
import math
import warnings

import numpy as np
import torch
from scipy import stats

from .config import ExperimentConfig
from .progress import progress_bar

# Frames are stored as 8-bit values: rounding a continuous image to 256 levels already adds
# uniform noise of variance (1/255)^2 / 12 per value. An MSE below that measures nothing real,
# so a prediction is never scored as more accurate than the quantization of the frames
# themselves: PSNR_CAP_DB = 10 log10(12 * 255^2) = 58.9 dB. (The old cap, 100 dB, let one
# identical frame, copy-last where nothing moved, lift a mean of ~29 dB windows by 71/N dB.)
QUANTIZATION_MSE = 1.0 / (12 * 255**2)
PSNR_CAP_DB = 10 * math.log10(1 / QUANTIZATION_MSE)


def mse_to_psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR = 10 log10(1 / MSE) for frames in [0, 1], capped at PSNR_CAP_DB (see QUANTIZATION_MSE)."""
    return 10.0 * torch.log10(1.0 / mse.clamp(min=QUANTIZATION_MSE))


def frame_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample over the last three dims (C, H, W), in float32."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels only (all channels); NaN where the mask is empty."""
    mask = mask.expand_as(target).float()
    count = mask.sum(dim=(-3, -2, -1))
    mse = ((pred.float() - target.float()).pow(2) * mask).sum(dim=(-3, -2, -1)) / count.clamp(min=1)
    return torch.where(count > 0, mse, torch.full_like(mse, float("nan")))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per sample for frames in [0, 1]:
    PSNR = 10 log10(1 / MSE), MSE over the last three dims (C, H, W); any leading dims are kept.
    A perfect prediction (or any with MSE below 8-bit quantization noise) gives PSNR_CAP_DB."""
    return mse_to_psnr(frame_mse(pred, target))


def changed_mask(target: torch.Tensor, last_context: torch.Tensor, threshold: float) -> torch.Tensor:
    """[..., 1, H, W] bool: pixels of the true frame that differ from the last context frame."""
    return ((target - last_context).abs().amax(dim=-3, keepdim=True) > threshold)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR over the masked pixels only (all channels), capped like `psnr`; NaN where the mask is empty."""
    return mse_to_psnr(masked_mse(pred, target, mask))


def t_multiplier(n) -> np.ndarray:
    """Two-sided 95 % Student-t quantile t_{0.975, n-1} (1.96 only as n grows); NaN below 2 windows."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(n >= 2, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)


def summarize(scores: np.ndarray) -> dict:
    """Per column (horizon step) of scores [N, H]: the mean over windows, the 95 % confidence
    half-width of that mean, t_{0.975, n-1} * s / sqrt(n) (s the sample standard deviation), and n.
    NaNs (changed-pixel scores of windows where nothing changed) are skipped."""
    scores = np.asarray(scores, dtype=np.float64)
    n = np.sum(~np.isnan(scores), axis=0)
    with warnings.catch_warnings():  # a column with fewer than 2 windows gets a NaN CI, said in the docstring
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(scores, axis=0)
        std = np.nanstd(scores, axis=0, ddof=1)
    ci = t_multiplier(n) * std / np.sqrt(np.maximum(n, 1))
    return {"mean": mean.tolist(), "ci": ci.tolist(), "n": n.tolist()}


def summarize_psnr(scores: np.ndarray, mse: np.ndarray) -> dict:
    """`summarize` of per-window PSNR [N, H], plus two views one outlier cannot dominate:
    "psnr_of_mean_mse" 10 log10(1 / mean MSE) per step (the MSE is not capped: a perfect window
    adds 0 to the mean, not a huge PSNR) and "capped", the number of windows per step whose
    PSNR sits at PSNR_CAP_DB."""
    out = summarize(scores)
    mse = np.asarray(mse, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_mse = np.nanmean(mse, axis=0)
        out["psnr_of_mean_mse"] = (10 * np.log10(1 / np.maximum(mean_mse, QUANTIZATION_MSE))).tolist()
    # float32 MSE against the float32 clamp in mse_to_psnr: counts exactly the windows it capped
    out["capped"] = np.sum(mse.astype(np.float32) <= np.float32(QUANTIZATION_MSE), axis=0).tolist()
    return out


def _scores(pred, target, mask) -> dict:
    """Per-window PSNR and MSE, whole frame and changed pixels, as numpy arrays [B, H]."""
    whole, changed = frame_mse(pred, target), masked_mse(pred, target, mask)
    return {"whole": mse_to_psnr(whole).cpu().numpy(), "changed": mse_to_psnr(changed).cpu().numpy(),
            "whole_mse": whole.cpu().numpy(), "changed_mse": changed.cpu().numpy()}


# --------------------------------------------------------------------------------------------
# The windows
# --------------------------------------------------------------------------------------------
def tile_starts(episode: np.ndarray, length: int) -> np.ndarray:
    """Storage rows where non-overlapping tiles of `length` steps begin: each run of one episode
    id is cut from its first row into consecutive tiles; a remainder shorter than a tile is left."""
    episode = np.asarray(episode)
    if len(episode) == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    stop = np.r_[first[1:], len(episode)]
    return np.concatenate([np.arange(a, b - length + 1, length) for a, b in zip(first, stop)]).astype(np.int64)


def evaluation_windows(val, cfg: ExperimentConfig) -> dict:
    """The fixed windows of C + H frames every model is scored on.

    The validation episodes are tiled without overlap (`tile_starts`), so no frame is scored in
    two windows: overlapping windows counted the same frames ~2.6 times and made the CI too
    narrow. When there are more tiles than cfg.eval_windows, that many are kept, evenly spread
    over all tiles in storage order. Nothing is random: the windows depend on the validation
    data (fixed by the data seed cfg.seed and cfg.val_episodes) and C + H only, never on a
    training seed. Returns the window tensors of `EpisodeDataset` plus "start" (rows in `val`),
    "episode" (episode id of each window) and "n_tiles" (how many tiles there were to choose from).
    """
    length = cfg.context + cfg.horizon
    starts = tile_starts(val.arrays["episode"], length)
    if len(starts) == 0:
        raise ValueError(f"No validation episode has {length} steps (context {cfg.context} + horizon "
                         f"{cfg.horizon}): raise val_episodes or collect more steps.")
    n_tiles = len(starts)
    if n_tiles > cfg.eval_windows:
        # spacing (n_tiles - 1) / (eval_windows - 1) > 1, so rounding never picks a tile twice
        starts = starts[np.round(np.linspace(0, n_tiles - 1, cfg.eval_windows)).astype(np.int64)]
    out = val._gather(starts, length)
    out["start"] = torch.from_numpy(starts)
    out["episode"] = torch.from_numpy(np.asarray(val.arrays["episode"])[starts].astype(np.int64))
    out["n_tiles"] = n_tiles
    return out


def windows_digest(windows: dict) -> str:
    """sha256 of the windows' frames and actions: names the window set in the results file."""
    h = hashlib.sha256()
    for key in ("obs", "action"):
        h.update(np.ascontiguousarray(windows[key].numpy()))  # hashed in place, no copy to bytes
    return h.hexdigest()


def _batches(windows: dict, chunk: int, device):
    """The windows in chunks of `chunk`, on `device`: (obs [B, C+H, 3, 64, 64], action [B, C+H])."""
    for i in range(0, len(windows["obs"]), chunk):
        yield windows["obs"][i : i + chunk].to(device), windows["action"][i : i + chunk].to(device)


class _Consumed:
    """A model as the evaluator sees it: every tensor handed to observe / imagine / encode /
    predict_next is hashed on its way in. Comparing these digests between models checks what each
    model actually consumed, not the shared window tensors they were cut from (which are equal
    by construction, so a check on them could never fail)."""

    def __init__(self, model):
        self.model, self.sha = model, hashlib.sha256()

    def _hash(self, *tensors):
        for t in tensors:
            self.sha.update(np.ascontiguousarray(t.detach().cpu().numpy()))

    def observe(self, obs, actions):
        self._hash(obs, actions)
        return self.model.observe(obs, actions)

    def imagine(self, state, actions, **kwargs):
        self._hash(actions)
        return self.model.imagine(state, actions, **kwargs)

    def encode(self, obs, actions=None):
        self._hash(obs, *([] if actions is None else [actions]))
        return self.model.encode(obs, actions)

    def predict_next(self, obs, actions):
        self._hash(obs, actions)
        return self.model.predict_next(obs, actions)

    def decode(self, latents):
        return self.model.decode(latents)


@torch.no_grad()
def rollout(model, obs: torch.Tensor, action: torch.Tensor, cfg: ExperimentConfig, sample: bool = False,
            generator: torch.Generator | None = None) -> dict:
    """Context -> H imagined frames [B, H, 3, 64, 64], and the latent-hold frames from the same state."""
    C, H = cfg.context, cfg.horizon
    state = model.observe(obs[:, :C], action[:, : C - 1])
    imagined = model.imagine(state, action[:, C - 1 : C - 1 + H], sample=sample, generator=generator)
    hold = model.decode(state["latent"])[:, None].expand(-1, H, -1, -1, -1)
    return {"frames": model.decode(imagined["latent"]), "latent_hold": hold, "imagined": imagined}


@torch.no_grad()
def evaluate_rollouts(models: dict, val, cfg: ExperimentConfig, chunk: int = 32, progress: bool = True) -> dict:
    """Score every model on the same windows. Returns

    {"horizons": [1..H], "context": C, "n_windows": N, "n_tiles": tiles available,
     "window_starts": [...], "window_episodes": [...], "window_method": one sentence,
     "windows_sha256": digest of the windows, "psnr_cap_db": PSNR_CAP_DB, "ci_level": 0.95,
     "changed_threshold", "changed_fraction",
     "models": {name: {"mode" | "sampled" | "latent_hold" | "recon_ceiling" | "teacher_forced":
                        {"whole": {"mean", "ci", "n", "psnr_of_mean_mse", "capped"}, "changed": {...}}}},
     "baselines": {"copy_last" | "context_mean": {...}},
     "raw": {(name, curve): {"whole": array [N, H], "changed": array [N, H]}}}   # for paired tests
    Every list in a summary has one value per horizon step. "ci" is the 95 % t-interval
    half-width over windows; "capped" counts windows at PSNR_CAP_DB. Mode (argmax) latents are
    the headline; "sampled" averages the decoded frames of cfg.eval_samples sampled rollouts
    (the same for both models). Raises RuntimeError if two models consumed different windows.
    """
    C, H = cfg.context, cfg.horizon
    windows = evaluation_windows(val, cfg)
    N = len(windows["obs"])
    raw: dict = {}
    consumed: dict[str, str] = {}

    def add(key, s):
        slot = raw.setdefault(key, {})
        for metric in s:
            slot.setdefault(metric, []).append(s[metric])

    bar = progress_bar(total=N * (len(models) + 1), desc="evaluating rollouts", disable=not progress)
    changed = 0.0
    # model-free baselines
    for obs, _ in _batches(windows, chunk, "cpu"):
        target, last = obs[:, C : C + H], obs[:, C - 1 : C]
        mask = changed_mask(target, last, cfg.changed_threshold)
        changed += float(mask.float().sum())
        add(("baselines", "copy_last"), _scores(last.expand_as(target), target, mask))
        add(("baselines", "context_mean"), _scores(obs[:, :C].mean(1, keepdim=True).expand_as(target), target, mask))
        bar.update(len(obs))
    for name, model in models.items():
        model.eval()
        device = model.device
        # sampled rollouts draw from their own generator, seeded by the data seed: the same
        # draws for every model and every training seed
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        seen = _Consumed(model)
        for obs, act in _batches(windows, chunk, device):
            target, last = obs[:, C : C + H], obs[:, C - 1 : C]
            mask = changed_mask(target, last, cfg.changed_threshold)
            out = rollout(seen, obs, act, cfg)
            add((name, "mode"), _scores(out["frames"], target, mask))
            add((name, "latent_hold"), _scores(out["latent_hold"], target, mask))
            samples = torch.stack([rollout(seen, obs, act, cfg, sample=True, generator=generator)["frames"]
                                   for _ in range(cfg.eval_samples)]).mean(0)
            add((name, "sampled"), _scores(samples, target, mask))
            posterior = seen.encode(obs[:, : C + H], act[:, : C + H - 1])
            add((name, "recon_ceiling"), _scores(seen.decode(posterior[:, C:]), target, mask))
            one_step = seen.decode(seen.predict_next(obs[:, : C + H], act[:, : C + H]))  # frames 1..C+H-1
            add((name, "teacher_forced"), _scores(one_step[:, C - 1 :], target, mask))
            bar.update(len(obs))
        consumed[name] = seen.sha.hexdigest()
    bar.close()
    if len(set(consumed.values())) > 1:  # checked, not assumed: every model consumed the same tensors
        raise RuntimeError(f"models were evaluated on different windows (sha256 of what each consumed): {consumed}")

    raw = {k: {m: np.concatenate(v) for m, v in slot.items()} for k, slot in raw.items()}
    results = {"horizons": list(range(1, H + 1)), "context": C, "n_windows": N, "n_tiles": windows["n_tiles"],
               "window_starts": windows["start"].tolist(), "window_episodes": windows["episode"].tolist(),
               "window_method": f"{N} non-overlapping windows of {C + H} frames tiled within "
                                f"{len(set(windows['episode'].tolist()))} validation episodes "
                                f"({windows['n_tiles']} tiles available)",
               "windows_sha256": windows_digest(windows), "psnr_cap_db": PSNR_CAP_DB, "ci_level": 0.95,
               "changed_threshold": cfg.changed_threshold, "models": {}, "baselines": {}}
    for (owner, curve), s in raw.items():
        group = results["baselines"] if owner == "baselines" else results["models"].setdefault(owner, {})
        group[curve] = {m: summarize_psnr(s[m], s[f"{m}_mse"]) for m in ("whole", "changed")}
    # paired tests read per-window PSNR; the MSE went into the summaries above
    results["raw"] = {k: {m: s[m] for m in ("whole", "changed")} for k, s in raw.items()}
    results["changed_fraction"] = changed / (N * H * windows["obs"].shape[-2] * windows["obs"].shape[-1])
    return results


def paired_margin(results: dict, a: tuple, b: tuple, metric: str = "changed") -> dict:
    """Mean and 95% CI per horizon of the per-window difference a - b (e.g. model minus its
    latent-hold). Paired over the same windows, so far tighter than comparing two CIs."""
    diff = results["raw"][a][metric] - results["raw"][b][metric]
    return summarize(diff)


def headline_table(results: dict, horizons=(1, 3, 5, 10), metric: str = "whole") -> list[dict]:
    """Rows {name, h1, h3, ...} of mean PSNR for the table in the notebook and README."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    rows = []
    for name, curves in results["models"].items():
        for curve in ("mode", "sampled", "latent_hold", "recon_ceiling", "teacher_forced"):
            m = curves[curve][metric]["mean"]
            rows.append({"name": f"{name} {curve.replace('_', '-')}", **{f"h{h}": m[h - 1] for h in horizons}})
    for name, c in results["baselines"].items():
        m = c[metric]["mean"]
        rows.append({"name": name.replace("_", "-"), **{f"h{h}": m[h - 1] for h in horizons}})
    return rows


def capped_counts(results: dict) -> list[tuple]:
    """(curve name, metric, horizon, windows) for every curve and horizon where some window's
    PSNR sat at the cap, PSNR_CAP_DB; an empty list when none did."""
    curves = [(f"{name} {curve}", s) for name, cs in results["models"].items() for curve, s in cs.items()]
    curves += [(name, s) for name, s in results["baselines"].items()]
    return [(label.replace("_", "-"), metric, h, count)
            for label, s in curves for metric in ("whole", "changed")
            for h, count in zip(results["horizons"], s[metric].get("capped", [])) if count]


def format_table(results: dict, horizons=(1, 3, 5, 10)) -> str:
    """Plain-text table of mean PSNR (whole-frame | changed-pixel) at the given horizons, and
    the windows whose PSNR was capped."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    whole = headline_table(results, horizons, "whole")
    changed = headline_table(results, horizons, "changed")
    head = f"{'':30s}" + "".join(f"{'h=' + str(h):>8s}" for h in horizons)
    lines = [f"{'whole-frame PSNR (dB)':30s}", head]
    lines += [f"{r['name']:30s}" + "".join(f"{r[f'h{h}']:8.2f}" for h in horizons) for r in whole]
    lines += ["", f"{'changed-pixel PSNR (dB)':30s}", head]
    lines += [f"{r['name']:30s}" + "".join(f"{r[f'h{h}']:8.2f}" for h in horizons) for r in changed]
    capped = capped_counts(results)
    cap = f"windows capped at {results.get('psnr_cap_db', PSNR_CAP_DB):.1f} dB (the 8-bit quantization limit): "
    lines += ["", cap + ("; ".join(f"{c} {m} h={h}: {n}" for c, m, h, n in capped) if capped else "none")]
    return "\n".join(lines)


# The baselines each model's mode rollout is compared with in the facts, and where their
# per-window scores live in results["raw"] (None: the model's own latent-hold curve)
BASELINE_CURVES = {"latent_hold": None, "context_mean": ("baselines", "context_mean"),
                   "copy_last": ("baselines", "copy_last")}


def comparison_facts(results: dict, histories: dict, a: str = "RSSM", b: str = "Transformer",
                     horizons=(1, 3, 5, 10)) -> dict:
    """The numbers the conclusion rests on, computed (not typed). Every (mean, ci) pair is a
    paired per-window difference in dB with its 95 % t-interval half-width, keyed by horizon:

    "lead"[metric][h]                      {"leader", "by_db", "ci"}: b mode minus a mode
    "margins"[baseline][name][metric][h]   (mean, ci): name's mode minus the baseline, for the
                                           baselines latent_hold (its own), context_mean, copy_last
    "margin_over_latent_hold"[name][h]     = margins["latent_hold"][name]["changed"][h]
    "margin_over_copy_last"[name][h]       = margins["copy_last"][name]["whole"][h]
    "margin_over_context_mean"[name][metric][h]   = margins["context_mean"][name][metric][h]
    "teacher_forcing_gap_h10"[name]        teacher-forced minus mode PSNR at the last horizon
    "ms_per_step"[name], "step_time_ratio" (b / a) from the training histories.
    """
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    facts = {"lead": {}, "margins": {}}
    for metric in ("whole", "changed"):
        d = paired_margin(results, (b, "mode"), (a, "mode"), metric)
        facts["lead"][metric] = {h: {"leader": b if d["mean"][h - 1] > 0 else a,
                                     "by_db": abs(d["mean"][h - 1]), "ci": d["ci"][h - 1]} for h in horizons}
    for base, key in BASELINE_CURVES.items():
        facts["margins"][base] = {}
        for name in (a, b):
            other = key or (name, base)  # latent-hold: the model's own
            facts["margins"][base][name] = {}
            for metric in ("whole", "changed"):
                m = paired_margin(results, (name, "mode"), other, metric)
                facts["margins"][base][name][metric] = {h: (m["mean"][h - 1], m["ci"][h - 1]) for h in horizons}
    margins = facts["margins"]
    facts["margin_over_latent_hold"] = {n: margins["latent_hold"][n]["changed"] for n in (a, b)}
    facts["margin_over_copy_last"] = {n: margins["copy_last"][n]["whole"] for n in (a, b)}
    facts["margin_over_context_mean"] = {n: margins["context_mean"][n] for n in (a, b)}
    facts["teacher_forcing_gap_h10"] = {}
    for name in (a, b):
        tf = results["models"][name]["teacher_forced"]["whole"]["mean"][-1]
        facts["teacher_forcing_gap_h10"][name] = tf - results["models"][name]["mode"]["whole"]["mean"][-1]
    facts["ms_per_step"] = {n: h["ms_per_step"] for n, h in histories.items()}
    facts["step_time_ratio"] = histories[b]["ms_per_step"] / histories[a]["ms_per_step"]
    return facts


def print_facts(facts: dict, a: str = "RSSM", b: str = "Transformer") -> None:
    def row(m):
        return "; ".join(f"h={h}: {v:+.2f}±{c:.2f}" for h, (v, c) in m.items())

    for metric in ("whole", "changed"):
        parts = [f"h={h}: {v['leader']} +{v['by_db']:.2f}±{v['ci']:.2f}" for h, v in facts["lead"][metric].items()]
        print(f"leader, {metric}-frame PSNR (paired 95% CI): " + "; ".join(parts))
    for name, m in facts["margin_over_latent_hold"].items():
        print(f"{name} over its latent-hold, changed pixels: " + row(m))
    for name, m in facts["margin_over_context_mean"].items():
        for metric in ("whole", "changed"):
            print(f"{name} over context-mean, {'whole frame' if metric == 'whole' else 'changed pixels'}: "
                  + row(m[metric]))
    for name, m in facts["margin_over_copy_last"].items():
        print(f"{name} over copy-last, whole frame: " + row(m))
    for name, g in facts["teacher_forcing_gap_h10"].items():
        print(f"{name} teacher-forcing gap at h=10 (one-step minus open-loop PSNR): {g:.2f} dB")
    ms = facts["ms_per_step"]
    print(f"training step: {b} {ms[b]:.0f} ms, {a} {ms[a]:.0f} ms, ratio {facts['step_time_ratio']:.2f}")
