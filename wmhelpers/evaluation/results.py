"""The results file P05 reads: checkpoints/p04_results.json (fields documented in the README)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import torch

# 2: non-overlapping evaluation windows, t-interval CIs, PSNR capped at the 8-bit quantization
#    limit (58.9 dB, was 100), "psnr_of_mean_mse" and "capped" in every PSNR summary
RESULTS_VERSION = 3


def plain(x):
    """Drop numpy/tensor types and the raw per-window arrays: JSON only."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items() if k != "raw"}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


def training_summary(history: dict) -> dict:
    return {"steps": history.get("steps"), "train_seconds": history.get("train_seconds"),
            "ms_per_step": history.get("ms_per_step"), "device": history.get("device"),
            "precision": history.get("precision", "fp32"),
            "final_val_next_frame_mse": (history.get("val_next_frame_mse") or [None])[-1],
            "final_val": {k: v[-1] for k, v in history.get("val", {}).items()}}


def save_results(path, results: dict, histories: dict, cfg, data, device: str | None = None,
                 extra: dict | None = None) -> Path:
    """Write PSNR per horizon (both models, every baseline), training times, budgets, device,
    data fingerprint and config as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "results_version": RESULTS_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "precision": cfg.precision,
        "torch_version": str(torch.__version__),
        "data_fingerprint": data.fingerprint(),
        "config": cfg.to_dict(),
        "budget": {"train_steps": cfg.train_steps, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len,
                   "lr": cfg.lr, "env_steps": cfg.env_steps},
        "evaluation": {k: results[k] for k in ("horizons", "context", "n_windows", "n_tiles", "window_method",
                                               "window_starts", "window_episodes", "windows_sha256",
                                               "psnr_cap_db", "ci_level", "changed_threshold", "changed_fraction")},
        "psnr": {"models": results["models"], "baselines": results["baselines"]},
        "token_agreement": results.get("token_agreement", {}),
        "reward": results.get("reward", {}),
        "training": {name: training_summary(h) for name, h in histories.items()},
        "extra": extra or {},
    }
    return write_json(path, plain(doc))


def write_json(path, doc: dict) -> Path:
    """Write `doc` as JSON to a temporary file beside `path`, then rename it into place, so an
    interrupted run never leaves a half file (the results file and the seeds file alike)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path) -> dict:
    doc = json.loads(Path(path).read_text())
    if doc.get("results_version") != RESULTS_VERSION:
        raise ValueError(f"{path}: results_version {doc.get('results_version')} != {RESULTS_VERSION}")
    return doc
