"""Random-policy Atari data: collection, an on-disk cache, episode-aware windows, split, fingerprint.

One row per step t: obs[t] (uint8 64x64x3), action[t] taken at obs[t], reward[t] for it,
terminated[t] / truncated[t] (the episode ended / was cut after it), episode[t] (contiguous runs).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import queue as queue_module
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ExperimentConfig
from .progress import progress_bar

CACHE_FORMAT = 1
ARRAY_NAMES = ("obs", "action", "reward", "terminated", "truncated", "episode")
_CHUNK = 500  # steps a collection worker sends at a time (drives the progress bar)


# ---- Collection --------------------------------------------------------------------------------
def make_env(cfg: ExperimentConfig):
    """ALE env exactly as the experiment defines it: frameskip 4 and no sticky actions, so the
    recorded action is the executed one."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    return gym.make(cfg.env_id, frameskip=cfg.frameskip, repeat_action_probability=0.0)


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Area (box-filter) resize of an RGB frame to size x size, uint8."""
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BOX), dtype=np.uint8)


def to_float_frames(obs) -> torch.Tensor:
    """uint8 frames [..., H, W, 3] (numpy or torch) -> [..., 3, H, W] in [0, 1], as the models read them."""
    return torch.as_tensor(obs).movedim(-1, -3).float().div_(255.0)


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """Float frames [..., 3, H, W] in [0, 1] (decoded, say) -> uint8 [..., H, W, 3], like the stored ones."""
    x = frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy()


def _collect_stream(cfg_dict: dict, stream: int, steps: int, queue) -> None:
    """One worker: a uniformly random policy in its own env (seed + stream), sending ("chunk" | "done" |
    "error", stream, payload, num_actions) through `queue`."""
    try:
        cfg = ExperimentConfig.from_dict(cfg_dict)
        env = make_env(cfg)
        rng = np.random.default_rng(cfg.seed + 1000 * stream)
        frame, _ = env.reset(seed=cfg.seed + stream)
        n_actions = int(env.action_space.n)
        episode = 0
        buf = {k: [] for k in ARRAY_NAMES}
        for t in range(steps):
            action = int(rng.integers(n_actions))
            buf["obs"].append(resize_frame(frame, cfg.frame_size))
            frame, reward, terminated, truncated, _ = env.step(action)
            last = t == steps - 1
            buf["action"].append(action)
            buf["reward"].append(float(reward))
            buf["terminated"].append(bool(terminated))
            buf["truncated"].append(bool(truncated) or (last and not terminated))
            buf["episode"].append(episode)
            if terminated or truncated:
                frame, _ = env.reset()
                episode += 1
            if len(buf["action"]) == _CHUNK or last:
                queue.put(("chunk", stream, {k: np.asarray(v) for k, v in buf.items()}, n_actions))
                buf = {k: [] for k in ARRAY_NAMES}
        env.close()
        queue.put(("done", stream, None, n_actions))
    except BaseException as exc:  # report, never hang the parent
        queue.put(("error", stream, f"{type(exc).__name__}: {exc}", 0))


def collect(cfg: ExperimentConfig, progress: bool = True) -> "EpisodeDataset":
    """Collect cfg.env_steps random-policy steps in cfg.collect_streams env copies, in parallel worker
    processes; the data depend only on cfg, never on the core count."""
    streams = cfg.collect_streams
    per_stream = [cfg.env_steps // streams + (1 if i < cfg.env_steps % streams else 0) for i in range(streams)]
    workers = max(1, min(streams, os.cpu_count() or 1))
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    queue = ctx.Queue(maxsize=64)
    parts: dict[int, list[dict]] = {i: [] for i in range(streams)}
    num_actions = 0
    pending = list(range(streams))
    running: dict[int, mp.Process] = {}
    bar = progress_bar(total=cfg.env_steps, desc=f"collecting {cfg.env_id}", unit="step", disable=not progress)
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.pop(0)
                p = ctx.Process(target=_collect_stream, args=(cfg.to_dict(), i, per_stream[i], queue), daemon=True)
                p.start()
                running[i] = p
            try:
                # A short timeout, so a worker that died without a word (killed, out of memory,
                # a crash in the emulator) is noticed within a second, not after minutes.
                kind, stream, payload, n = queue.get(timeout=1.0)
            except queue_module.Empty:
                for i, p in running.items():
                    if not p.is_alive() and p.exitcode != 0:
                        raise RuntimeError(
                            f"data collection worker for env stream {i} (seed {cfg.seed + i}) died with exit "
                            f"code {p.exitcode} before finishing; nothing was cached. Run again; if it keeps "
                            f"dying, try collect_streams=1 or free some memory.") from None
                continue
            if kind == "error":
                raise RuntimeError(f"data collection worker {stream} failed: {payload}")
            num_actions = max(num_actions, n)
            if kind == "chunk":
                parts[stream].append(payload)
                bar.update(len(payload["action"]))
            else:
                running.pop(stream).join()
    finally:
        bar.close()
        for p in running.values():
            p.terminate()

    chunks = [c for i in range(streams) for c in parts[i]]  # stream by stream: the data never depend on timing
    arrays = {k: np.concatenate([c[k] for c in chunks]) for k in ARRAY_NAMES}
    stream_of_row = np.concatenate([np.full(len(c["action"]), i) for i in range(streams) for c in parts[i]])
    # episode ids restart in every stream: number them (stream, episode) in storage order
    _, arrays["episode"] = np.unique(np.stack([stream_of_row, arrays["episode"]]), axis=1, return_inverse=True)
    import ale_py
    import gymnasium

    meta = dict(_settings(cfg), num_actions=num_actions, gymnasium_version=gymnasium.__version__,
                ale_py_version=ale_py.__version__)  # the versions are recorded, not matched
    return EpisodeDataset({**arrays, "action": arrays["action"].astype(np.int64), "reward": arrays["reward"].astype(
        np.float32), "episode": arrays["episode"].reshape(-1).astype(np.int32)}, meta)


def _settings(cfg: ExperimentConfig) -> dict:
    """The metadata that must agree with the config for a cache to be reused."""
    return {"cache_format": CACHE_FORMAT, "env_id": cfg.env_id, "seed": cfg.seed, "env_steps": cfg.env_steps,
            "frame_size": cfg.frame_size, "frameskip": cfg.frameskip, "collect_streams": cfg.collect_streams}


# ---- Cache -------------------------------------------------------------------------------------
def cache_paths(cfg: ExperimentConfig) -> tuple[Path, Path]:
    slug = cfg.env_id.replace("/", "_").replace("-", "_").lower()
    stem = f"{slug}_{cfg.env_steps}steps_seed{cfg.seed}_{cfg.frame_size}px"
    root = Path(cfg.data_dir)
    return root / f"{stem}.npz", root / f"{stem}.json"


def load_or_collect(cfg: ExperimentConfig, progress: bool = True, verbose: bool = True) -> "EpisodeDataset":
    """The dataset for cfg from the cache in cfg.data_dir, else (other settings, corrupt, incomplete:
    said in one line) collected and cached."""
    npz_path, meta_path = cache_paths(cfg)
    reason = None
    if npz_path.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            wanted = _settings(cfg)
            diff = [k for k in wanted if meta.get(k) != wanted[k]]
            if diff:
                changes = ", ".join(f"{k}: {meta.get(k)} != {wanted[k]}" for k in diff)
                reason = f"cache made with other settings ({changes})"
            else:
                data = _read_npz(npz_path, meta)
                if verbose:
                    print(f"Loaded {len(data):,} steps ({data.num_episodes} episodes) from {npz_path}")
                return data
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, json.JSONDecodeError) as exc:
            reason = f"cache {npz_path} is unreadable or corrupt ({type(exc).__name__}: {str(exc)[:120]})"
    elif npz_path.exists() or meta_path.exists():
        reason = f"cache {npz_path} is incomplete"
    if reason and verbose:
        print(f"Recollecting: {reason}.")
    data = collect(cfg, progress=progress)
    save_cache(data, npz_path, meta_path)
    if verbose:
        print(f"Collected {len(data):,} steps ({data.num_episodes} episodes), cached in {npz_path}")
    return data


def save_cache(data: "EpisodeDataset", npz_path: Path, meta_path: Path) -> None:
    """Write arrays then metadata, each to a temporary file renamed into place."""
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz_path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **data.arrays)
    os.replace(tmp, npz_path)
    meta = dict(data.meta, fingerprint=data.fingerprint())
    tmp_meta = meta_path.with_suffix(".tmp.json")
    tmp_meta.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_meta, meta_path)


def _read_npz(path: Path, meta: dict) -> "EpisodeDataset":
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in ARRAY_NAMES}
    data = EpisodeDataset(arrays, {k: v for k, v in meta.items() if k != "fingerprint"})
    if "fingerprint" in meta and data.fingerprint() != meta["fingerprint"]:
        raise ValueError("arrays do not match the fingerprint recorded when the cache was written")
    return data


# ---- Dataset -----------------------------------------------------------------------------------
@dataclass
class EpisodeDataset:
    """Arrays of contiguous episodes plus metadata; windows never cross an episode boundary."""

    arrays: dict
    meta: dict

    def __post_init__(self):
        self._fingerprint = None
        ep = self.arrays["episode"]
        self._episode_starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]]) if len(ep) else np.zeros(0, int)

    def __len__(self) -> int:
        return len(self.arrays["action"])

    @property
    def num_actions(self) -> int:
        return int(self.meta["num_actions"])

    @property
    def num_episodes(self) -> int:
        return len(self._episode_starts)

    def fingerprint(self) -> str:
        """sha256 over every array (shape, dtype, bytes) and the action count; stable across reloads."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"num_actions={self.num_actions}".encode())
            for k in ARRAY_NAMES:
                a = np.ascontiguousarray(self.arrays[k])
                h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
                h.update(memoryview(a).cast("B"))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def _rows(self, start: int, stop: int) -> "EpisodeDataset":
        return EpisodeDataset({k: v[start:stop] for k, v in self.arrays.items()}, dict(self.meta))

    def split(self, cfg: ExperimentConfig) -> tuple["EpisodeDataset", "EpisodeDataset"]:
        """(train, val) by whole episodes: the last cfg.val_episodes episodes are validation only."""
        k = cfg.val_episodes
        if self.num_episodes < k + 1:
            raise ValueError(
                f"Cannot split {self.num_episodes} episode(s) into train and {k} validation episode(s): "
                f"collect more steps (env_steps={cfg.env_steps}) or lower val_episodes."
            )
        cut = int(self._episode_starts[self.num_episodes - k])
        return self._rows(0, cut), self._rows(cut, len(self))

    def window_starts(self, length: int) -> np.ndarray:
        """Every row s such that rows s .. s+length-1 lie in one episode."""
        ep = self.arrays["episode"]
        if len(ep) < length:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(ep[: len(ep) - length + 1] == ep[length - 1 :]).astype(np.int64)

    def tile_starts(self, length: int) -> np.ndarray:
        """Rows where non-overlapping tiles of `length` steps begin: each episode is cut from its
        first row into consecutive tiles; a remainder shorter than a tile is left out."""
        if not self.num_episodes:
            return np.zeros(0, dtype=np.int64)
        stops = np.r_[self._episode_starts[1:], len(self)]
        return np.concatenate([np.arange(a, b - length + 1, length)
                               for a, b in zip(self._episode_starts, stops)]).astype(np.int64)

    def windows(self, starts: np.ndarray, length: int) -> dict:
        """The windows of `length` steps beginning at rows `starts`, as float/int tensors (see module doc)."""
        idx = starts[:, None] + np.arange(length)[None, :]
        return {
            "obs": to_float_frames(self.arrays["obs"][idx]),
            "action": torch.from_numpy(self.arrays["action"][idx].astype(np.int64)),
            "reward": torch.from_numpy(self.arrays["reward"][idx].astype(np.float32)),
            "cont": torch.from_numpy(1.0 - self.arrays["terminated"][idx].astype(np.float32)),
        }

    def _checked_starts(self, length: int) -> np.ndarray:
        starts = self.window_starts(length)
        if len(starts) == 0:
            raise ValueError(f"No episode in this dataset has {length} steps; a window needs them all in one episode.")
        return starts

    def sample(self, batch: int, seq_len: int, generator: torch.Generator | None = None) -> dict:
        """Random windows that never cross an episode end, as float/int tensors (see module doc)."""
        starts = self._checked_starts(seq_len)
        pick = torch.randint(len(starts), (batch,), generator=generator).numpy()
        return self.windows(starts[pick], seq_len)

    def fixed_windows(self, n: int, length: int, seed: int = 0) -> dict:
        """n windows chosen once by `seed` (sorted, without repeats when possible): the same every call."""
        starts = self._checked_starts(length)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(starts), size=n, replace=n > len(starts)))
        out = self.windows(starts[pick], length)
        out["start"] = torch.from_numpy(starts[pick])
        return out
