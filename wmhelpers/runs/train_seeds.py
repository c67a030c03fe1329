"""The `seeds` command: train every (training seed, model) that is missing, evaluate every seed
on the same windows, and write the seeds file (its format: evaluation/seeds.py).

    python -m wmhelpers seeds --seeds 0 1 2 3 4                 # the default pair
    python -m wmhelpers seeds --seeds 0 1 2 3 4 --variant tf2   # the 2-layer Transformer ablation
    python -m wmhelpers seeds --seeds 0 1 2 3 4 --memory        # the cue-recall experiment (Section 6)

Each (seed, model) is a checkpoint: the default seed's are the shipped ones
(`p03_rssm.pt`, `p04_transformer.pt`), the others go to `checkpoints/seeds/` (not committed:
size). A finished checkpoint is loaded, never trained again, so an interrupted run resumes; two
processes may train different models side by side (`--models rssm` / `--models transformer`,
one thread each) and a last call without `--models` evaluates and writes the file. Each call
updates its own section of the file (the pair, one variant, or the memory runs) and keeps the rest,
as long as the file was made with the same configuration.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ..config import ExperimentConfig
from ..data import load_or_collect
from ..evaluation.results import plain, write_json
from ..evaluation.rollouts import evaluate_rollouts
from ..evaluation.seeds import SEEDS_VERSION, config_differences, load_seeds, seed_record
from ..models import MODEL_REGISTRY
from .checkpoints import load_checkpoint, load_or_train
from .cue_recall import CueRecallConfig, default_config, run_cue_recall

MODEL_NAMES = {"rssm": "RSSM", "transformer": "Transformer"}
SHIPPED = {"rssm": "p03_rssm.pt", "transformer": "p04_transformer.pt"}
# Named variants: ExperimentConfig overrides that change the Transformer only (the RSSM of the same
# seed is the default's, which these fields cannot reach: config.BACKBONE_FIELDS).
VARIANTS = {"tf2": {"tf_layers": 2}}


def checkpoint_path(cfg: ExperimentConfig, kind: str, seed: int, variant: str | None = None) -> Path:
    """The shipped checkpoint for the default training seed, a git-ignored one for the others."""
    if variant:
        return Path(cfg.checkpoint_dir) / "seeds" / f"{kind}_{variant}_seed{seed}.pt"
    if seed == ExperimentConfig().train_seed:
        return Path(cfg.checkpoint_dir) / SHIPPED[kind]
    return Path(cfg.checkpoint_dir) / "seeds" / f"{kind}_seed{seed}.pt"


def train_seed_models(cfg: ExperimentConfig, data, seeds, kinds=("rssm", "transformer"), variant: str | None = None,
                      progress: bool = True) -> dict:
    """Load or train every (seed, kind) on `data`; returns {(seed, kind): (model, history)}."""
    train, val = data.split(cfg)
    out = {}
    for seed in seeds:
        seed_cfg = cfg.replace(train_seed=int(seed), **VARIANTS.get(variant, {}))
        for kind in kinds:
            path = checkpoint_path(cfg, kind, int(seed), variant)
            print(f"--- seed {seed}, {MODEL_NAMES[kind]}{f' ({variant})' if variant else ''}: {path}", flush=True)
            out[(int(seed), kind)] = load_or_train(MODEL_REGISTRY[kind], path, seed_cfg, data, train, val,
                                                   progress=progress)
    return out


def _document(cfg: ExperimentConfig, data, out: Path) -> dict:
    """The seeds file to update: the existing one when it was made for this configuration and
    data, else a new one (a file for another budget is replaced, never mixed)."""
    doc = load_seeds(out) if out.exists() else None
    if doc is not None and not config_differences(doc, cfg) and doc.get("data_fingerprint") == data.fingerprint():
        return doc
    return {"seeds_version": SEEDS_VERSION, "config": cfg.replace(train_seed=ExperimentConfig().train_seed).to_dict(),
            "data_fingerprint": data.fingerprint(), "runs": {}}


def run_seeds(cfg: ExperimentConfig, seeds, kinds=("rssm", "transformer"), out=None, variant: str | None = None,
              memory: bool = False, long: bool = False, progress: bool = True) -> dict | None:
    """Train what is missing; when every kind was asked for, evaluate every seed on the same
    windows and update the seeds file (atomically). Returns the document (None if only training).

    variant: train and evaluate that variant's Transformer instead of the pair. memory: run the
    cue-recall experiment for each seed missing from the file (no world-model training: the shipped
    RSSM's frozen VAE tokenises the frames; run_cue_recall trains every condition on those tokens),
    writing the file after each seed, so two processes may run different seeds side by side. long:
    the same experiment with CueRecallConfig.long()'s budget, in the section "memory_long"."""
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known variants: {sorted(VARIANTS)}")
    data = load_or_collect(cfg, progress=progress, verbose=progress)
    out = Path(out or Path(cfg.checkpoint_dir) / "p04_seeds.json")
    train, val = data.split(cfg)
    if memory:
        vae = load_checkpoint(checkpoint_path(cfg, "rssm", ExperimentConfig().train_seed), expect=cfg,
                              data=data)[0].vae
        mcfg, key = (CueRecallConfig.long(), "memory_long") if long else (default_config(cfg), "memory")
        for seed in seeds:
            done = _document(cfg, data, out).get(key) or {}
            if done.get("config") == mcfg.to_dict() and str(int(seed)) in done.get("runs", {}):
                print(f"--- {key} seed {seed}: in {out} already", flush=True)
                continue
            res = plain(run_cue_recall(vae, train, val, cfg.replace(train_seed=int(seed)), mcfg, progress=progress))
            doc = _document(cfg, data, out)  # read again: another process may have added its seeds
            section = doc.get(key) if (doc.get(key) or {}).get("config") == mcfg.to_dict() else None
            section = section or {"config": mcfg.to_dict(), "runs": {}}
            section["runs"][str(int(seed))] = res
            doc[key] = section
            _write(doc, out)
        return _document(cfg, data, out)
    kinds = ("transformer",) if variant else tuple(kinds)
    trained = train_seed_models(cfg, data, seeds, kinds, variant, progress=progress)
    if not variant and set(kinds) != set(MODEL_NAMES):
        return None
    doc = _document(cfg, data, out)
    target = doc.setdefault("variants", {}).setdefault(variant, {"overrides": VARIANTS[variant], "runs": {}}) \
        if variant else doc
    for seed in seeds:
        models = {MODEL_NAMES[k]: trained[(int(seed), k)][0] for k in kinds}
        histories = {MODEL_NAMES[k]: trained[(int(seed), k)][1] for k in kinds}
        res = evaluate_rollouts(models, val, cfg, progress=progress)
        doc["horizons"] = res["horizons"]
        doc["windows_sha256"] = res.get("windows_sha256")
        target["runs"][str(int(seed))] = seed_record(res, histories)
    return _write(doc, out)


def _write(doc: dict, out: Path) -> dict:
    doc["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    path = write_json(out, doc)
    parts = [f"pair seeds {sorted(doc.get('runs', {}), key=int)}"]
    parts += [f"{name} seeds {sorted(v['runs'], key=int)}" for name, v in doc.get("variants", {}).items()]
    parts += [f"{key} seeds {sorted(doc[key]['runs'], key=int)}" for key in ("memory", "memory_long") if doc.get(key)]
    print(f"Wrote {path}: " + "; ".join(parts), flush=True)
    return doc
