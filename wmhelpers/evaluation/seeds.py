"""Training seeds: how much of a difference between the two world models is training noise.

One trained pair gives one number per horizon; its paired window CI says how sure we are about
THOSE two models on THESE windows, not whether another training run would agree. So the verdict
is decided across training seeds: `ExperimentConfig.train_seed` moves the initialisation, the
batch order, latent sampling and dropout, while the data, the split and the validation and
evaluation windows (all chosen by `cfg.seed`) stay fixed.

`python -m wmhelpers seeds` (runs/train_seeds.py) writes `checkpoints/p04_seeds.json` (its format:
the README). A variant (the 2-layer ablation "tf2") retrains only the Transformer and is compared
with the default RSSM of the same seed (`variant_runs`), whose weights cannot depend on the
Transformer's fields (config.BACKBONE_FIELDS).

This module reads that file and computes over it: each seed's record, the spread over seeds
(stats.interval), the seed table. It trains nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import RUN_ENVIRONMENT_FIELDS, ExperimentConfig
from ..device import precision_of
from .results import plain
from .stats import interval

SEEDS_VERSION = 2


def seed_record(results: dict, histories: dict) -> dict:
    """What the seeds file keeps of one seed's evaluation: summaries per curve, no raw arrays."""
    models = {}
    for name, curves in results["models"].items():
        h = histories[name]
        models[name] = {
            "psnr": plain(curves), "reward": plain(results.get("reward", {}).get(name)),
            "ms_per_step": h.get("ms_per_step"), "train_seconds": h.get("train_seconds"),
            "device": h.get("device"), "device_record": h.get("device_record"),
            "precision": h.get("precision", "fp32"),
            "val_curve": {"step": h.get("step", []), "loss": h.get("val", {}).get("total", []),
                          "next_frame_mse": h.get("val_next_frame_mse", [])},
            "final_val": {k: v[-1] for k, v in h.get("val", {}).items()},
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
    config differs from this run's, and its precision if that differs: a spread measured at
    another budget or in another precision is not borrowed."""
    want = cfg.to_dict()
    have = doc.get("config", {})
    skip = set(RUN_ENVIRONMENT_FIELDS) - {"context", "horizon", "eval_windows", "changed_threshold"}
    skip |= {"train_seed"}
    out = [k for k in sorted(set(want) | set(have)) if k not in skip and want.get(k) != have.get(k)]
    theirs = precision_of(have.get("amp", "auto"))
    if theirs != cfg.precision:
        out.append(f"precision (the seeds were trained in {theirs}, this run in {cfg.precision})")
    return out


def run_precision(run: dict) -> str:
    """The precision a seed's models trained in; records made before it was kept were all fp32."""
    found = {m.get("precision", "fp32") for m in run.get("models", {}).values()} or {"fp32"}
    return found.pop() if len(found) == 1 else "mixed"


# ---- statistics over seeds -----------------------------------------------------------------------
def _curve(run: dict, owner: str, curve: str, metric: str) -> np.ndarray:
    """Per-horizon mean PSNR of one run: a model's curve, or a baseline (owner "baselines")."""
    if owner == "baselines":
        return np.asarray(run["baselines"][curve][metric]["mean"], dtype=float)
    return np.asarray(run["models"][owner]["psnr"][curve][metric]["mean"], dtype=float)


def seed_runs(doc: dict | None, this_run: dict | None = None, this_seed=None, section: dict | None = None) -> dict:
    """{seed: run} from the seeds file (or `section` of it), with THIS run as its own seed: when the
    file holds this run's training seed, this run's numbers replace that entry, so a re-run on
    another machine is judged on what it measured, never on the shipped numbers under its name."""
    runs = dict((section if section is not None else (doc or {})).get("runs", {}))
    if this_run is not None:
        # one precision per verdict: a run in another precision never joins it (device.BF16_FINDING)
        runs = {s: r for s, r in runs.items() if run_precision(r) == run_precision(this_run)}
        runs[str(this_seed)] = this_run
    return sorted_runs(runs)


def memory_runs(this_run: dict | None, doc: dict | None, section: str = "memory") -> dict:
    """{seed: cue-recall run} of the seeds file's `section` ("memory"; "memory_long": the longer
    budget), or {} where it was made with another cue-recall configuration than this_run's; with
    this_run, that run joins as its own seed (doc: the borrowed seeds file, or None)."""
    sec = (doc or {}).get(section) or {}
    if this_run is not None and sec.get("config") != this_run["config"]:
        sec = {}
    return seed_runs(None, this_run, (this_run or {}).get("train_seed"), section={"runs": sec.get("runs", {})})


def sorted_runs(runs: dict) -> dict:
    """The runs in seed order (0, 1, 2, ... numerically), so rows and lines follow the seeds."""
    return dict(sorted(runs.items(), key=lambda kv: int(kv[0])))


def merge(results: dict, histories: dict, cfg: ExperimentConfig, doc: dict | None) -> dict:
    """The seeds the verdict is decided over, merged once: {"runs": {seed: run} (the seeds file when
    its configuration and precision match this run's, with THIS run as its own seed), "borrowed":
    the file or None, "differences": why it was not borrowed, "shipped": the file's own entry for
    this run's seed (shown beside it, not in the verdict)}."""
    differences = config_differences(doc, cfg) if doc else ["no seeds file"]
    borrowed = None if differences else doc
    return {"runs": seed_runs(borrowed, seed_record(results, histories), cfg.train_seed), "borrowed": borrowed,
            "differences": differences, "shipped": (borrowed or {}).get("runs", {}).get(str(cfg.train_seed))}


def variant_runs(doc: dict | None, variant: str, default_runs: dict) -> dict:
    """{seed: run} pairing the variant's Transformer with the default RSSM of the same seed
    (the seeds both hold), so every function over runs reads an ablation like the main pair."""
    var = ((doc or {}).get("variants") or {}).get(variant, {}).get("runs", {})
    out = {}
    for seed in sorted(set(var) & set(default_runs), key=int):
        run = default_runs[seed]
        out[seed] = {"models": {**run["models"], "Transformer": var[seed]["models"]["Transformer"]},
                     "baselines": run["baselines"]}
    return out


def reward_rows(runs: dict, names=("RSSM", "Transformer")) -> dict:
    """{name: {metric: [one value per seed that has reward metrics]}} and the seeds they came from."""
    out = {}
    for name in names:
        rows = [(seed, run["models"][name].get("reward")) for seed, run in runs.items()]
        rows = [(seed, r) for seed, r in rows if r]
        out[name] = {"seeds": [seed for seed, _ in rows]} | {
            k: [r[k] for _, r in rows] for k in ("event_rate", "auprc", "mse", "mse_zero", "mse_mean")}
    return out


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
