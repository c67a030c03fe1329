"""Open-loop rollout evaluation: PSNR per horizon for every model and every baseline.

Protocol (identical for every model): the same N fixed validation windows of C + H frames;
each model observes the first C frames and the C-1 actions between them, then imagines H
steps open-loop with the real actions; predicted latents are decoded and compared with the
true frames. Two scores per window and horizon step:
    whole-frame PSNR     10 log10(1 / MSE) over all pixels
    changed-pixel PSNR   the same over only the pixels whose true value differs from the last
                         context frame by more than cfg.changed_threshold (in any channel):
                         where the boxers move, i.e. where the dynamics live.
Baselines on the same windows: copy the last context frame; the mean of the context frames;
per model: latent-hold (decode the last context latent, repeated: no dynamics), the
reconstruction ceiling (decode the posterior of the true frame: no prediction at all) and the
teacher-forced one-step prediction (real frames up to t, so the teacher-forcing gap shows).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from .config import ExperimentConfig
from .progress import progress_bar

PSNR_CAP_DB = 100.0  # psnr of a perfect prediction: MSE is floored at 1e-10 so the mean stays finite


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per sample for frames in [0, 1]:
    PSNR = 10 log10(1 / MSE), MSE over the last three dims (C, H, W); any leading dims are kept.
    A perfect prediction gives PSNR_CAP_DB (100 dB) instead of infinity."""
    if pred.shape != target.shape:
        raise ValueError(f"psnr: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    return 10.0 * torch.log10(1.0 / mse.clamp(min=10 ** (-PSNR_CAP_DB / 10)))


def changed_mask(target: torch.Tensor, last_context: torch.Tensor, threshold: float) -> torch.Tensor:
    """[..., 1, H, W] bool: pixels of the true frame that differ from the last context frame."""
    return ((target - last_context).abs().amax(dim=-3, keepdim=True) > threshold)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR over the masked pixels only (all channels); NaN where the mask is empty."""
    mask = mask.expand_as(target).float()
    count = mask.sum(dim=(-3, -2, -1))
    mse = ((pred.float() - target.float()).pow(2) * mask).sum(dim=(-3, -2, -1)) / count.clamp(min=1)
    out = 10.0 * torch.log10(1.0 / mse.clamp(min=10 ** (-PSNR_CAP_DB / 10)))
    return torch.where(count > 0, out, torch.full_like(out, float("nan")))


def summarize(scores: np.ndarray) -> dict:
    """Per-step mean and 95% confidence half-width (1.96 standard errors) over windows; NaNs skipped."""
    n = np.sum(~np.isnan(scores), axis=0)
    mean = np.nanmean(scores, axis=0)
    std = np.nanstd(scores, axis=0, ddof=1)
    return {"mean": mean.tolist(), "ci": (1.96 * std / np.sqrt(np.maximum(n, 1))).tolist(), "n": n.tolist()}


def _scores(pred, target, mask) -> dict:
    return {"whole": psnr(pred, target).cpu().numpy(), "changed": masked_psnr(pred, target, mask).cpu().numpy()}


def evaluation_windows(val, cfg: ExperimentConfig) -> dict:
    """The fixed windows of context + horizon frames every model is scored on."""
    return val.fixed_windows(cfg.eval_windows, cfg.context + cfg.horizon, seed=cfg.seed + 1)


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

    {"horizons": [1..H], "context": C, "n_windows": N, "window_starts": [...],
     "models": {name: {"mode" | "sampled" | "latent_hold" | "recon_ceiling" | "teacher_forced":
                        {"whole": {"mean", "ci", "n"}, "changed": {...}}}},
     "baselines": {"copy_last" | "context_mean": {...}},
     "raw": {(name, curve): {"whole": array [N, H], "changed": array [N, H]}}}   # for paired tests
    Mode (argmax) latents are the headline; "sampled" averages the decoded frames of
    cfg.eval_samples sampled rollouts (the same for both models).
    """
    C, H = cfg.context, cfg.horizon
    windows = evaluation_windows(val, cfg)
    N = len(windows["obs"])
    raw: dict = {}
    seen: dict[str, str] = {}

    def add(key, s):
        slot = raw.setdefault(key, {"whole": [], "changed": []})
        for metric in ("whole", "changed"):
            slot[metric].append(s[metric])

    bar = progress_bar(total=N * (len(models) + 1), desc="evaluating rollouts", disable=not progress)
    changed = 0.0
    # model-free baselines
    for i in range(0, N, chunk):
        obs = windows["obs"][i : i + chunk]
        target, last = obs[:, C : C + H], obs[:, C - 1 : C]
        mask = changed_mask(target, last, cfg.changed_threshold)
        changed += float(mask.float().sum())
        add(("baselines", "copy_last"), _scores(last.expand_as(target), target, mask))
        add(("baselines", "context_mean"), _scores(obs[:, :C].mean(1, keepdim=True).expand_as(target), target, mask))
        bar.update(len(obs))
    for name, model in models.items():
        model.eval()
        device = model.device
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
        digest = hashlib.sha256()
        for i in range(0, N, chunk):
            obs = windows["obs"][i : i + chunk].to(device)
            act = windows["action"][i : i + chunk].to(device)
            digest.update(obs.cpu().numpy().tobytes())
            digest.update(act.cpu().numpy().tobytes())
            target, last = obs[:, C : C + H], obs[:, C - 1 : C]
            mask = changed_mask(target, last, cfg.changed_threshold)
            out = rollout(model, obs, act, cfg)
            add((name, "mode"), _scores(out["frames"], target, mask))
            add((name, "latent_hold"), _scores(out["latent_hold"], target, mask))
            samples = torch.stack([rollout(model, obs, act, cfg, sample=True, generator=generator)["frames"]
                                   for _ in range(cfg.eval_samples)]).mean(0)
            add((name, "sampled"), _scores(samples, target, mask))
            posterior = model.encode(obs[:, : C + H], act[:, : C + H - 1])
            add((name, "recon_ceiling"), _scores(model.decode(posterior[:, C:]), target, mask))
            one_step = model.decode(model.predict_next(obs[:, : C + H], act[:, : C + H]))  # frames 1..C+H-1
            add((name, "teacher_forced"), _scores(one_step[:, C - 1 :], target, mask))
            bar.update(len(obs))
        seen[name] = digest.hexdigest()
    bar.close()
    if len(set(seen.values())) > 1:  # checked, not assumed: every model saw the same windows and actions
        raise RuntimeError(f"models were evaluated on different windows: {seen}")

    raw = {k: {m: np.concatenate(v[m]) for m in v} for k, v in raw.items()}
    results = {"horizons": list(range(1, H + 1)), "context": C, "n_windows": N,
               "window_starts": windows["start"].tolist(), "windows_sha256": next(iter(seen.values()), None),
               "changed_threshold": cfg.changed_threshold, "models": {}, "baselines": {}}
    for (owner, curve), scores in raw.items():
        group = results["baselines"] if owner == "baselines" else results["models"].setdefault(owner, {})
        group[curve] = {m: summarize(scores[m]) for m in scores}
    results["raw"] = raw
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


def format_table(results: dict, horizons=(1, 3, 5, 10)) -> str:
    """Plain-text table of mean PSNR (whole-frame | changed-pixel) at the given horizons."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    whole = headline_table(results, horizons, "whole")
    changed = headline_table(results, horizons, "changed")
    head = f"{'':30s}" + "".join(f"{'h=' + str(h):>8s}" for h in horizons)
    lines = [f"{'whole-frame PSNR (dB)':30s}", head]
    lines += [f"{r['name']:30s}" + "".join(f"{r[f'h{h}']:8.2f}" for h in horizons) for r in whole]
    lines += ["", f"{'changed-pixel PSNR (dB)':30s}", head]
    lines += [f"{r['name']:30s}" + "".join(f"{r[f'h{h}']:8.2f}" for h in horizons) for r in changed]
    return "\n".join(lines)


def comparison_facts(results: dict, histories: dict, a: str = "RSSM", b: str = "Transformer",
                     horizons=(1, 3, 5, 10)) -> dict:
    """The numbers the conclusion rests on, computed (not typed): who leads at each horizon and by
    how much (paired 95% CI), each model's margin over its latent-hold baseline and over copy-last,
    the teacher-forcing gap at h=10, and the training step-time ratio."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    facts = {"lead": {}, "margin_over_latent_hold": {}, "margin_over_copy_last": {}, "teacher_forcing_gap_h10": {}}
    for metric in ("whole", "changed"):
        d = paired_margin(results, (b, "mode"), (a, "mode"), metric)
        facts["lead"][metric] = {h: {"leader": b if d["mean"][h - 1] > 0 else a,
                                     "by_db": abs(d["mean"][h - 1]), "ci": d["ci"][h - 1]} for h in horizons}
    for name in (a, b):
        m = paired_margin(results, (name, "mode"), (name, "latent_hold"), "changed")
        facts["margin_over_latent_hold"][name] = {h: (m["mean"][h - 1], m["ci"][h - 1]) for h in horizons}
        c = paired_margin(results, (name, "mode"), ("baselines", "copy_last"), "whole")
        facts["margin_over_copy_last"][name] = {h: (c["mean"][h - 1], c["ci"][h - 1]) for h in horizons}
        tf = results["models"][name]["teacher_forced"]["whole"]["mean"][-1]
        facts["teacher_forcing_gap_h10"][name] = tf - results["models"][name]["mode"]["whole"]["mean"][-1]
    facts["ms_per_step"] = {n: h["ms_per_step"] for n, h in histories.items()}
    facts["step_time_ratio"] = histories[b]["ms_per_step"] / histories[a]["ms_per_step"]
    return facts


def print_facts(facts: dict, a: str = "RSSM", b: str = "Transformer") -> None:
    for metric in ("whole", "changed"):
        parts = [f"h={h}: {v['leader']} +{v['by_db']:.2f}±{v['ci']:.2f}" for h, v in facts["lead"][metric].items()]
        print(f"leader, {metric}-frame PSNR (paired 95% CI): " + "; ".join(parts))
    for name, m in facts["margin_over_latent_hold"].items():
        print(f"{name} over its latent-hold, changed pixels: "
              + "; ".join(f"h={h}: {v:+.2f}±{c:.2f}" for h, (v, c) in m.items()))
    for name, m in facts["margin_over_copy_last"].items():
        print(f"{name} over copy-last, whole frame: "
              + "; ".join(f"h={h}: {v:+.2f}±{c:.2f}" for h, (v, c) in m.items()))
    for name, g in facts["teacher_forcing_gap_h10"].items():
        print(f"{name} teacher-forcing gap at h=10 (one-step minus open-loop PSNR): {g:.2f} dB")
    ms = facts["ms_per_step"]
    print(f"training step: {b} {ms[b]:.0f} ms, {a} {ms[a]:.0f} ms, ratio {facts['step_time_ratio']:.2f}")
