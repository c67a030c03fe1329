"""The `seeds` command: train every (training seed, model) that is missing, evaluate every seed
on the same windows, and write the seeds file (its format: evaluation/seeds.py).

    python -m wmhelpers seeds --seeds 1 2 3            # trains what is missing, then evaluates

Each (seed, model) is a checkpoint: the default seed's are the shipped ones
(`p03_rssm.pt`, `p04_transformer.pt`), the others go to `checkpoints/seeds/` (not committed:
size). A finished checkpoint is loaded, never trained again, so an interrupted run resumes; two
processes may train different models side by side (`--models rssm` / `--models transformer`,
one thread each) and a last call without `--models` evaluates and writes the file.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..config import ExperimentConfig
from ..data import load_or_collect
from ..evaluation.results import write_json
from ..evaluation.rollouts import evaluate_rollouts
from ..evaluation.seeds import SEEDS_VERSION, seed_record
from ..models import MODEL_REGISTRY
from .checkpoints import load_or_train

MODEL_NAMES = {"rssm": "RSSM", "transformer": "Transformer"}
SHIPPED = {"rssm": "p03_rssm.pt", "transformer": "p04_transformer.pt"}


def checkpoint_path(cfg: ExperimentConfig, kind: str, seed: int) -> Path:
    """The shipped checkpoint for the default training seed, a git-ignored one for the others."""
    if seed == ExperimentConfig().train_seed:
        return Path(cfg.checkpoint_dir) / SHIPPED[kind]
    return Path(cfg.checkpoint_dir) / "seeds" / f"{kind}_seed{seed}.pt"


def train_seed_models(cfg: ExperimentConfig, data, seeds, kinds=("rssm", "transformer"),
                      progress: bool = True) -> dict:
    """Load or train every (seed, kind) on `data`; returns {(seed, kind): (model, history)}."""
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


def run_seeds(cfg: ExperimentConfig, seeds, kinds=("rssm", "transformer"), out=None,
              progress: bool = True) -> dict | None:
    """Train what is missing; when both kinds were asked for, evaluate every seed on the same
    windows and write the seeds file (atomically). Returns the document (None if only training)."""
    data = load_or_collect(cfg, progress=progress, verbose=progress)
    trained = train_seed_models(cfg, data, seeds, kinds, progress=progress)
    if set(kinds) != set(MODEL_NAMES):
        return None
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
