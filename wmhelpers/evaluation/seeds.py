"""Training seeds: how much of a difference between the two world models is training noise.

One trained pair gives one number per horizon; its paired window CI says how sure we are about
THOSE two models on THESE windows, not whether another training run would agree. So the verdict
is decided across training seeds: `ExperimentConfig.train_seed` moves the initialisation, the
batch order, latent sampling and dropout, while the data, the split and the validation and
evaluation windows (all chosen by `cfg.seed`) stay fixed.

`python -m wmhelpers seeds --seeds 1 2 3` (runs/train_seeds.py) writes `checkpoints/p04_seeds.json`:

    {"seeds_version", "created", "config" (the ExperimentConfig, train_seed = the default),
     "data_fingerprint", "windows_sha256", "horizons",
     "runs": {"<seed>": {"models": {"RSSM" | "Transformer": {
                            "psnr": {curve: {"whole" | "changed": {"mean": [H], ...}}},
                            "ms_per_step", "train_seconds", "device", "device_record",
                            "val_curve": {"step", "loss", "next_frame_mse"}, "final_val": {...}}},
                         "baselines": {"copy_last" | "context_mean": {"whole" | "changed": {...}}}}}}

This module reads that file and computes over it: each seed's record, the spread over seeds
(stats.interval), the seed table. It trains nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import RUN_ENVIRONMENT_FIELDS, ExperimentConfig
from .results import plain
from .stats import interval

SEEDS_VERSION = 1


def _val_curve(history: dict) -> dict:
    return {"step": history.get("step", []), "loss": history.get("val", {}).get("total", []),
            "next_frame_mse": history.get("val_next_frame_mse", [])}


def seed_record(results: dict, histories: dict) -> dict:
    """What the seeds file keeps of one seed's evaluation: summaries per curve, no raw arrays."""
    models = {}
    for name, curves in results["models"].items():
        h = histories[name]
        models[name] = {
            "psnr": plain(curves),
            "ms_per_step": h.get("ms_per_step"), "train_seconds": h.get("train_seconds"),
            "device": h.get("device"), "device_record": h.get("device_record"),
            "val_curve": _val_curve(h), "final_val": {k: v[-1] for k, v in h.get("val", {}).items()},
        }
    return {"models": models, "baselines": plain(results["baselines"])}


def load_seeds(path) -> dict | None:
    """The seeds file, or None if there is none (a fresh fork, a renamed folder)."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path) as f:
        doc = json.load(f)
    if doc.get("seeds_version") != SEEDS_VERSION or "runs" not in doc:
        raise ValueError(f"{path}: not a seeds file of version {SEEDS_VERSION}; rebuild it with "
                         "python -m wmhelpers seeds --seeds 1 2 3")
    return doc


def config_differences(doc: dict, cfg: ExperimentConfig) -> list[str]:
    """Fields (other than the training seed and the run environment) where the seeds file's
    config differs from this run's: a spread measured at another budget is not borrowed."""
    want = cfg.to_dict()
    have = doc.get("config", {})
    skip = set(RUN_ENVIRONMENT_FIELDS) - {"context", "horizon", "eval_windows", "changed_threshold"}
    skip |= {"train_seed"}
    return [k for k in sorted(set(want) | set(have)) if k not in skip and want.get(k) != have.get(k)]


# ---- statistics over seeds -----------------------------------------------------------------------
def _curve(run: dict, owner: str, curve: str, metric: str) -> np.ndarray:
    """Per-horizon mean PSNR of one run: a model's curve, or a baseline (owner "baselines")."""
    if owner == "baselines":
        return np.asarray(run["baselines"][curve][metric]["mean"], dtype=float)
    return np.asarray(run["models"][owner]["psnr"][curve][metric]["mean"], dtype=float)


def seed_runs(doc: dict | None, extra: dict | None = None, extra_seed=None) -> dict:
    """{seed: run} from the seeds file, plus this notebook's run when it is not already there."""
    runs = dict((doc or {}).get("runs", {}))
    if extra is not None and str(extra_seed) not in runs:
        runs[str(extra_seed)] = extra
    return runs


def per_seed(runs: dict, a: tuple, b: tuple | None = None, metric: str = "whole") -> np.ndarray:
    """[n_seeds, H] of curve a (minus curve b, seed by seed, when given). a, b: (owner, curve)."""
    rows = []
    for run in runs.values():
        x = _curve(run, *a, metric)
        rows.append(x - _curve(run, *b, metric) if b is not None else x)
    return np.stack(rows) if rows else np.zeros((0, 0))


def spread(runs: dict, a: tuple, b: tuple | None = None, metric: str = "whole") -> dict:
    """Per horizon: the t-interval over seeds of curve a (or of the seed-by-seed difference a - b).
    {"mean": [H], "ci": [H], "sd": [H], "n": int}."""
    x = per_seed(runs, a, b, metric)
    return {k: v.tolist() for k, v in interval(x).items() if k != "n"} | {"n": len(x)}


def band(runs: dict, names=("RSSM", "Transformer")) -> dict:
    """The seed spread of each model's mode rollouts, in the shape plots.psnr_vs_horizon takes."""
    return {name: {m: spread(runs, (name, "mode"), None, m) for m in ("whole", "changed")} for name in names}


def format_seed_table(runs: dict, this_seed=None, horizons=(1, 3, 5, 10), names=("RSSM", "Transformer")) -> str:
    """Plain-text table: mode-rollout PSNR per seed and model (whole | changed pixels), then the
    mean ± 95 % t-interval over seeds. The row of `this_seed` is marked as this notebook's run."""
    if not runs:
        return "no seeds"
    H = len(next(iter(runs.values()))["models"][names[0]]["psnr"]["mode"]["whole"]["mean"])
    hs = [h for h in horizons if h <= H]
    head = f"{'seed':14s}{'model':13s}" + "".join(f"{'whole h=' + str(h):>11s}" for h in hs) + \
        "".join(f"{'changed h=' + str(h):>13s}" for h in hs)
    lines = [head]
    for seed in sorted(runs, key=int):
        label = f"{seed} (this run)" if this_seed is not None and str(seed) == str(this_seed) else str(seed)
        for name in names:
            c = runs[seed]["models"][name]["psnr"]["mode"]
            lines.append(f"{label:14s}{name:13s}" + "".join(f"{c['whole']['mean'][h - 1]:11.2f}" for h in hs)
                         + "".join(f"{c['changed']['mean'][h - 1]:13.2f}" for h in hs))
    if len(runs) > 1:
        for name in names:
            s = {m: spread(runs, (name, "mode"), None, m) for m in ("whole", "changed")}
            cell = lambda m, h: f"{s[m]['mean'][h - 1]:.2f}±{s[m]['ci'][h - 1]:.2f}"  # noqa: E731
            lines.append(f"{'mean ± t95':14s}{name:13s}" + "".join(f"{cell('whole', h):>11s}" for h in hs)
                         + "".join(f"{cell('changed', h):>13s}" for h in hs))
    lines.append(f"{len(runs)} training seed(s); ± is the 95 % t-interval over seeds (training noise), "
                 "not over windows")
    return "\n".join(lines)
