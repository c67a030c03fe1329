"""Open-loop rollout evaluation: PSNR per horizon for every model and every baseline.

Every model observes the first C frames of the same N fixed validation windows (cut without overlap),
then imagines H steps open-loop with the real actions; the decoded frames are scored per window and
step by whole-frame PSNR, 10 log10(1 / MSE), and changed-pixel PSNR (only pixels whose true value
differs from the last context frame by more than cfg.changed_threshold: where the boxers move),
capped at PSNR_CAP_DB. Baselines on the same windows: copy-last and context-mean (model-free);
per model latent-hold (no dynamics), the reconstruction ceiling (no prediction) and the
teacher-forced one-step prediction. Means come with 95 % t-intervals over windows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..config import ExperimentConfig
from ..progress import progress_bar
from .psnr import PSNR_CAP_DB, changed_mask, frame_mse, masked_mse, mse_to_psnr
from .reward import reward_event_metrics
from .stats import summarize, summarize_psnr


def _scores(pred, target, mask) -> dict:
    """Per-window PSNR and MSE, whole frame and changed pixels, as numpy arrays [B, H]."""
    whole, changed = frame_mse(pred, target), masked_mse(pred, target, mask)
    return {"whole": mse_to_psnr(whole).cpu().numpy(), "changed": mse_to_psnr(changed).cpu().numpy(),
            "whole_mse": whole.cpu().numpy(), "changed_mse": changed.cpu().numpy()}


# --------------------------------------------------------------------------------------------
# The windows
# --------------------------------------------------------------------------------------------
def evaluation_windows(val, cfg: ExperimentConfig) -> dict:
    """The fixed windows of C + H frames every model is scored on.

    The validation episodes are tiled without overlap (`EpisodeDataset.tile_starts`), so no frame is scored in
    two windows: overlapping windows would count the same frames ~2.6 times and make the CI too
    narrow. When there are more tiles than cfg.eval_windows, that many are kept, evenly spread
    over all tiles in storage order. Nothing is random: the windows depend on the validation
    data (fixed by the data seed cfg.seed and cfg.val_episodes) and C + H only, never on a
    training seed. Returns the window tensors of `EpisodeDataset` plus "start" (rows in `val`),
    "episode" (episode id of each window) and "n_tiles" (how many tiles there were to choose from).
    """
    length = cfg.context + cfg.horizon
    starts = val.tile_starts(length)
    if len(starts) == 0:
        raise ValueError(f"No validation episode has {length} steps (context {cfg.context} + horizon "
                         f"{cfg.horizon}): raise val_episodes or collect more steps.")
    n_tiles = len(starts)
    if n_tiles > cfg.eval_windows:
        # spacing (n_tiles - 1) / (eval_windows - 1) > 1, so rounding never picks a tile twice
        starts = starts[np.round(np.linspace(0, n_tiles - 1, cfg.eval_windows)).astype(np.int64)]
    out = val.windows(starts, length)
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
    """The windows in chunks of `chunk`, on `device`: (obs [B, C+H, 3, 64, 64], action [B, C+H],
    reward [B, C+H] left on the CPU)."""
    for i in range(0, len(windows["obs"]), chunk):
        yield (windows["obs"][i : i + chunk].to(device), windows["action"][i : i + chunk].to(device),
               windows["reward"][i : i + chunk])


def token_agreement(z: torch.Tensor, reference: torch.Tensor, latent_vars: int) -> torch.Tensor:
    """The fraction of the categorical variables whose class (argmax) is the same in the flat
    one-hot tokens z and reference [..., V*K]: [...] in [0, 1]."""
    pick = lambda t: t.reshape(*t.shape[:-1], latent_vars, -1).argmax(-1)  # noqa: E731
    return (pick(z) == pick(reference)).float().mean(-1)


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
     "reward": {name: reward.reward_event_metrics of the teacher-forced reward head on every window step},
     "token_agreement": {name: {"mean", "ci", "n"} per horizon: the fraction of the 32 categoricals of
                         each imagined (mode) token equal to the posterior token of the true frame},
     "raw": {(name, curve): {"whole": array [N, H], "changed": array [N, H]}}}   # for paired tests
    Every list in a summary has one value per horizon step. "ci" is the 95 % t-interval
    half-width over windows; "capped" counts windows at PSNR_CAP_DB. Mode (argmax) latents are
    the headline; "sampled" averages the decoded frames of cfg.eval_samples sampled rollouts
    (the same for both models). Every model reads the same window tensors, cut once above.
    """
    C, H = cfg.context, cfg.horizon
    windows = evaluation_windows(val, cfg)
    N = len(windows["obs"])
    raw: dict = {}
    reward_scores: dict[str, dict] = {}
    agreement: dict[str, list] = {}

    def add(key, s):
        slot = raw.setdefault(key, {})
        for metric in s:
            slot.setdefault(metric, []).append(s[metric])

    bar = progress_bar(total=N * (len(models) + 1), desc="evaluating rollouts", disable=not progress)
    changed = 0.0
    # model-free baselines
    for obs, _, _ in _batches(windows, chunk, "cpu"):
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
        rewards = {"pred": [], "true": []}
        for obs, act, rew in _batches(windows, chunk, device):
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
            agreement.setdefault(name, []).append(
                token_agreement(out["imagined"]["latent"], posterior[:, C:], model.vae.latent_vars).cpu().numpy())
            one_step = model.one_step(obs[:, : C + H], act[:, : C + H])
            frames = model.decode(one_step["latent"])  # frames 1..C+H-1
            add((name, "teacher_forced"), _scores(frames[:, C - 1 :], target, mask))
            rewards["pred"].append(one_step["reward"].float().cpu().reshape(-1))
            rewards["true"].append(rew.reshape(-1))
            bar.update(len(obs))
        reward_scores[name] = reward_event_metrics(torch.cat(rewards["pred"]).numpy(),
                                                   torch.cat(rewards["true"]).numpy())
    bar.close()

    raw = {k: {m: np.concatenate(v) for m, v in slot.items()} for k, slot in raw.items()}
    results = {"horizons": list(range(1, H + 1)), "context": C, "n_windows": N, "n_tiles": windows["n_tiles"],
               "window_starts": windows["start"].tolist(), "window_episodes": windows["episode"].tolist(),
               "window_method": f"{N} non-overlapping windows of {C + H} frames tiled within "
                                f"{len(set(windows['episode'].tolist()))} validation episodes "
                                f"({windows['n_tiles']} tiles available)",
               "windows_sha256": windows_digest(windows), "psnr_cap_db": PSNR_CAP_DB, "ci_level": 0.95,
               "changed_threshold": cfg.changed_threshold, "models": {}, "baselines": {},
               "reward": reward_scores,
               "token_agreement": {name: summarize(np.concatenate(a)) for name, a in agreement.items()}}
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


