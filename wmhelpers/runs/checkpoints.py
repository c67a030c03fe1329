"""Checkpoints: a plain dict saved with torch.save and loaded with weights_only=True (a classmate's
checkpoint cannot run code), and `load_or_train`. FORMAT_VERSION 2 keys: format_version, kind,
model_config, experiment, data_fingerprint, history (with its "precision"), meta, state_dict.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..config import ExperimentConfig, fields_that_shape
from ..data import EpisodeDataset
from ..device import device_name, device_record
from ..evaluation.wallclock import burst_ms_per_step, train_here
from ..models import MODEL_REGISTRY
from ..training.loop import train_world_model

# 2: every ExperimentConfig field is compared (by exclusion), train_seed exists, meta.device_record.
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint, or one that does not match the experiment."""


def save_checkpoint(path, model, cfg: ExperimentConfig, history: dict | None, data=None) -> Path:
    """Write the checkpoint atomically (a temporary file in the same folder, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    history = history or {}
    ckpt = {
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "model_config": model.model_config(),
        "experiment": cfg.to_dict(),
        "data_fingerprint": data.fingerprint() if data is not None else None,
        "history": history,
        "meta": {
            "torch_version": str(torch.__version__),  # TorchVersion is not weights_only-safe
            "device": device_name(model.device),
            "device_record": history.get("device_record") or device_record(model.device),
            "wall_seconds": float(history.get("train_seconds", 0.0)),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)  # atomic: a reader never sees half a checkpoint
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write
    return path


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict, or a CheckpointError that names the path (never a pickle traceback)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError, AttributeError,
            TypeError, KeyError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated, corrupt, or not written by save_checkpoint): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        ) from None
    needed = ("format_version", "kind", "model_config", "experiment", "state_dict")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in needed):
        have = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a P04 checkpoint: expected keys {list(needed)}, found {have}.")
    return ckpt


def checkpoint_mismatches(ckpt: dict, expect: ExperimentConfig | None = None, data=None) -> list[str]:
    """Every way the checkpoint differs from the expected experiment, one string per key."""
    diffs = []
    if ckpt["format_version"] != FORMAT_VERSION:
        diffs.append(f"format_version: checkpoint {ckpt['format_version']} != expected {FORMAT_VERSION}")
    exp = ckpt.get("experiment", {})
    mc = ckpt.get("model_config", {})
    if expect is not None:
        # By exclusion: every field that can change this kind's trained weights or their data is
        # compared, including fields added after this code was written (config.RUN_ENVIRONMENT_FIELDS
        # and config.BACKBONE_FIELDS say why each skipped field cannot).
        want = expect.to_dict()
        shaping = fields_that_shape(ckpt.get("kind", ""))
        for k in sorted(set(want) | set(exp)):
            if k in want and k not in shaping:
                continue
            if k not in exp:
                diffs.append(f"{k}: missing from the checkpoint (made by an older version) != expected {want[k]!r}")
            elif k not in want:
                diffs.append(f"{k}: checkpoint has {exp[k]!r}, a field this version does not know")
            elif exp[k] != want[k]:
                diffs.append(f"{k}: checkpoint {exp[k]!r} != expected {want[k]!r}")
        # precision shapes what is learned (device.BF16_FINDING); a checkpoint made before it was
        # recorded was trained in fp32, as every model then was
        have = ckpt.get("history", {}).get("precision", "fp32")
        if have != expect.precision:
            diffs.append(f"precision: checkpoint trained in {have} != expected {expect.precision} (amp={expect.amp!r})")
    if data is not None:
        if mc.get("num_actions") != data.num_actions:
            diffs.append(f"num_actions: checkpoint {mc.get('num_actions')!r} != expected {data.num_actions!r}")
        if ckpt.get("data_fingerprint") != data.fingerprint():
            diffs.append(f"data_fingerprint: checkpoint {str(ckpt.get('data_fingerprint'))[:12]}... "
                         f"!= expected {data.fingerprint()[:12]}...")
    return diffs


def load_checkpoint(path, expect: ExperimentConfig | None = None, data=None, device=None):
    """Rebuild the model recorded in the checkpoint -> (model, history); with `expect` and/or `data`,
    every mismatch is reported in one CheckpointError that names the command rebuilding it."""
    ckpt = read_checkpoint(path)
    kind = ckpt["kind"]
    if kind not in MODEL_REGISTRY:
        raise CheckpointError(f"{path}: unknown model kind {kind!r}; known kinds: {sorted(MODEL_REGISTRY)}.")
    cls = MODEL_REGISTRY[kind]
    diffs = checkpoint_mismatches(ckpt, expect, data)
    if diffs:
        smoke = " (with WM_SMOKE=1 for the smoke config)" if expect is not None and expect.smoke_mode else ""
        raise CheckpointError(
            f"{path} does not match this experiment:\n  - " + "\n  - ".join(diffs)
            + f"\nRebuild it with: {cls.rebuild_command}{smoke}"
        )
    mc = ckpt["model_config"]
    known = cls.config_from(ExperimentConfig(), 0)
    unknown, missing = sorted(set(mc) - set(known)), sorted(set(known) - set(mc))
    if unknown or missing:
        raise CheckpointError(f"{path}: model_config has key(s) {unknown} that a {kind} model does not take and "
                              f"lacks {missing} (written by another version of wmhelpers?).\n"
                              f"Rebuild it with: {cls.rebuild_command}")
    model = cls(mc)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {kind} model built from its model_config: "
                              f"{str(exc).splitlines()[0]}") from None
    if device is None:
        device = (expect or ExperimentConfig()).resolve_device()
    model = model.to(device).eval()
    return model, ckpt.get("history", {})


def load_or_train(model_cls, path, cfg: ExperimentConfig, data: EpisodeDataset, train: EpisodeDataset,
                  val: EpisodeDataset, progress: bool = True, train_here_if_foreign: bool = False):
    """(model, history) from the checkpoint at `path` if it matches cfg and data, else say why, train
    one with the same budget and save it; train_here_if_foreign: also retrain on a GPU when the
    checkpoint was trained on another kind of device (wall clocks compare on one device only)."""
    device = cfg.resolve_device()
    try:
        model, history = load_checkpoint(path, expect=cfg, data=data)
        if train_here_if_foreign and train_here(history, device):
            print(f"{path} was trained on {history.get('device')}; this is {device_name(device)}, so it is "
                  f"trained again here with the same budget (wall clocks only compare on one device).")
        else:
            print(f"Loaded {path}: {model.kind}, {history.get('steps')} steps, trained in "
                  f"{history.get('train_seconds', 0):.0f} s on {history.get('device')}.")
            return model, history
    except CheckpointError as exc:
        ms = burst_ms_per_step(model_cls, cfg, train, data.num_actions)
        print(f"Not using {path}: {exc}\nTraining it now with the same function and budget: about "
              f"{cfg.train_steps * ms / 60_000:.0f} min here ({ms:.0f} ms/step timed over a short burst).")
    model = model_cls.from_config(cfg, num_actions=data.num_actions)
    history = train_world_model(model, train, val, cfg, progress=progress)
    save_checkpoint(path, model, cfg, history, data)
    return model, history
