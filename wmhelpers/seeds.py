"""Training seeds: how much of a difference between the two world models is training noise.

One trained pair gives one number per horizon; its paired window CI says how sure we are about
THOSE two models on THESE windows, not whether another training run would agree. So the verdict
is decided across training seeds: `ExperimentConfig.train_seed` moves the initialisation, the
batch order, latent sampling and dropout, while the data, the split and the validation and
evaluation windows (all chosen by `cfg.seed`) stay fixed.

    python -m wmhelpers seeds --seeds 1 2 3            # trains what is missing, then evaluates

writes `checkpoints/p04_seeds.json`:

    {"seeds_version", "created", "config" (the ExperimentConfig, train_seed = the default),
     "data_fingerprint", "windows_sha256", "horizons",
     "runs": {"<seed>": {"models": {"RSSM" | "Transformer": {
                            "psnr": {curve: {"whole" | "changed": {"mean": [H], ...}}},
                            "ms_per_step", "train_seconds", "device", "device_record",
                            "val_curve": {"step", "loss", "next_frame_mse"}, "final_val": {...}}},
                         "baselines": {"copy_last" | "context_mean": {"whole" | "changed": {...}}}}}}

Each (seed, model) is a checkpoint: the default seed's are the shipped ones
(`p03_rssm.pt`, `p04_transformer.pt`), the others go to `checkpoints/seeds/` (not committed:
size). A finished checkpoint is loaded, never trained again, so an interrupted run resumes; two
processes may train different models side by side (`--models rssm` / `--models transformer`,
one thread each) and a last call without `--models` evaluates and writes the file.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np

from .config import RUN_ENVIRONMENT_FIELDS, ExperimentConfig
from .evaluate import t_multiplier
from .results import write_json
from .world_model import MODEL_REGISTRY

SEEDS_VERSION = 1
MODEL_NAMES = {"rssm": "RSSM", "transformer": "Transformer"}
SHIPPED = {"rssm": "p03_rssm.pt", "transformer": "p04_transformer.pt"}


def checkpoint_path(cfg: ExperimentConfig, kind: str, seed: int) -> Path:
    """The shipped checkpoint for the default training seed, a git-ignored one for the others."""
    if seed == ExperimentConfig().train_seed:
        return Path(cfg.checkpoint_dir) / SHIPPED[kind]
    return Path(cfg.checkpoint_dir) / "seeds" / f"{kind}_seed{seed}.pt"


def train_seed_models(cfg: ExperimentConfig, seeds, kinds=("rssm", "transformer"), progress: bool = True) -> dict:
    """Load or train every (seed, kind); returns {(seed, kind): (model, history)}."""
    from .data import load_or_collect
    from .train import load_or_train

    data = load_or_collect(cfg, progress=progress, verbose=progress)
    train, val = data.split(cfg)
    out = {}
    for seed in seeds:
        seed_cfg = cfg.replace(train_seed=int(seed))
        for kind in kinds:
            path = checkpoint_path(cfg, kind, int(seed))
            print(f"--- seed {seed}, {MODEL_NAMES[kind]}: {path}", flush=True)
            out[(int(seed), kind)] = load_or_train(MODEL_REGISTRY[kind], path, seed_cfg, data, train, val,
                                                   progress=progress)
    return out


def _val_curve(history: dict) -> dict:
    return {"step": history.get("step", []), "loss": history.get("val", {}).get("total", []),
            "next_frame_mse": history.get("val_next_frame_mse", [])}


def seed_record(results: dict, histories: dict) -> dict:
    """What the seeds file keeps of one seed's evaluation: summaries per curve, no raw arrays."""
    from .results import _plain

    models = {}
    for name, curves in results["models"].items():
        h = histories[name]
        models[name] = {
            "psnr": _plain(curves),
            "ms_per_step": h.get("ms_per_step"), "train_seconds": h.get("train_seconds"),
            "device": h.get("device"), "device_record": h.get("device_record"),
            "val_curve": _val_curve(h), "final_val": {k: v[-1] for k, v in h.get("val", {}).items()},
        }
    return {"models": models, "baselines": _plain(results["baselines"])}


def run_seeds(cfg: ExperimentConfig, seeds, kinds=("rssm", "transformer"), out=None,
              progress: bool = True) -> dict | None:
    """Train what is missing; when both kinds were asked for, evaluate every seed on the same
    windows and write the seeds file (atomically). Returns the document (None if only training)."""
    from .data import load_or_collect
    from .evaluate import evaluate_rollouts

    trained = train_seed_models(cfg, seeds, kinds, progress=progress)
    if set(kinds) != set(MODEL_NAMES):
        return None
    data = load_or_collect(cfg, progress=False, verbose=False)
    _, val = data.split(cfg)
    doc = {"seeds_version": SEEDS_VERSION, "config": cfg.replace(train_seed=ExperimentConfig().train_seed).to_dict(),
           "data_fingerprint": data.fingerprint(), "runs": {}}
    for seed in seeds:
        models = {MODEL_NAMES[k]: trained[(int(seed), k)][0] for k in ("rssm", "transformer")}
        histories = {MODEL_NAMES[k]: trained[(int(seed), k)][1] for k in ("rssm", "transformer")}
        res = evaluate_rollouts(models, val, cfg, progress=progress)
        doc["horizons"] = res["horizons"]
        doc["windows_sha256"] = res.get("windows_sha256")
        doc["runs"][str(int(seed))] = seed_record(res, histories)
    doc["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    path = write_json(out or Path(cfg.checkpoint_dir) / "p04_seeds.json", doc)
    print(f"Wrote {path}: seeds {sorted(doc['runs'], key=int)}", flush=True)
    return doc


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


def run_record(results: dict, histories: dict) -> dict:
    """This notebook's own run in the seeds file's per-seed format, so it can stand beside them."""
    return seed_record(results, histories)


# ---- statistics over seeds -----------------------------------------------------------------------
def t_interval(values) -> dict:
    """Mean and 95% t-interval half-width over seeds: t_{0.975, n-1} * s / sqrt(n).

    With 5 seeds the multiplier is 2.78, with 3 it is 4.30 (not 1.96: the seeds are few). NaN
    half-width for a single seed: one run has no spread."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "ci": float("nan"), "sd": float("nan"), "n": n}
    sd = float(x.std(ddof=1))
    return {"mean": mean, "ci": float(t_multiplier(n) * sd / np.sqrt(n)), "sd": sd, "n": n}


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
    cols = [t_interval(x[:, i]) for i in range(x.shape[1])]
    return {k: [c[k] for c in cols] for k in ("mean", "ci", "sd")} | {"n": len(x)}


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
