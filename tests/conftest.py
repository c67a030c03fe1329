"""Shared fixtures for the wmhelpers tests: tiny configs, synthetic datasets, tiny models.

The machine has 2 cores and long trainings may run beside the tests, so torch uses one
thread and every model here is tiny.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wmhelpers.config import ExperimentConfig
from wmhelpers.data import EpisodeDataset

torch.set_num_threads(1)

NUM_ACTIONS = 6


def tiny_config(tmp_path=None, **overrides) -> ExperimentConfig:
    """A config small enough to build and run both world models on a CPU in milliseconds."""
    kwargs = dict(
        conv_widths=(8, 8, 8, 8), tf_dim=32, tf_heads=2, tf_layers=2, hidden=32, rssm_deter=32,
        seq_len=8, batch_size=4, device="cpu", amp="off", val_episodes=2,
    )
    if tmp_path is not None:
        kwargs.update(data_dir=str(tmp_path / "data"), checkpoint_dir=str(tmp_path / "checkpoints"))
    kwargs.update(overrides)
    return ExperimentConfig(**kwargs)


def make_arrays(episode_lengths, episode_ids=None, terminated_episodes=None, seed=0,
                num_actions=NUM_ACTIONS, moving_square=False) -> dict:
    """Synthetic storage arrays with one contiguous run of rows per episode.

    Every row is recoverable from what `sample` returns: reward[i] == i exactly (float32 holds
    integers below 2**24) and obs[i, 0, 0] encodes i in its first two channels (i % 256, i // 256).
    The rest of each frame is random noise, or a moving square on a plain background when
    `moving_square` (something a tiny model can learn quickly).
    The last row of every episode is terminated (episodes in `terminated_episodes`, default: every
    other one) or truncated (the others).
    """
    rng = np.random.default_rng(seed)
    lengths = list(episode_lengths)
    n = int(sum(lengths))
    ids = list(range(len(lengths))) if episode_ids is None else list(episode_ids)
    if terminated_episodes is None:
        terminated_episodes = set(ids[::2])
    if moving_square:
        obs = np.zeros((n, 64, 64, 3), np.uint8)
        obs[:] = (30, 60, 90)
        row = 0
        for length in lengths:
            x0, y0 = rng.integers(0, 48, size=2)
            for t in range(length):
                x = (x0 + 3 * t) % 48
                obs[row, y0 : y0 + 16, x : x + 16] = (250, 200, 20)
                row += 1
    else:
        obs = rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
    rows = np.arange(n)
    obs[:, 0, 0, 0] = rows % 256
    obs[:, 0, 0, 1] = rows // 256
    episode = np.repeat(np.asarray(ids, dtype=np.int32), lengths)
    terminated = np.zeros(n, bool)
    truncated = np.zeros(n, bool)
    ends = np.cumsum(lengths) - 1
    for ep_id, end in zip(ids, ends):
        if ep_id in terminated_episodes:
            terminated[end] = True
        else:
            truncated[end] = True
    return {
        "obs": obs,
        "action": rng.integers(0, num_actions, size=n).astype(np.int64),
        "reward": rows.astype(np.float32),
        "terminated": terminated,
        "truncated": truncated,
        "episode": episode.astype(np.int32),
    }


def make_dataset(episode_lengths, num_actions=NUM_ACTIONS, **kwargs) -> EpisodeDataset:
    return EpisodeDataset(make_arrays(episode_lengths, num_actions=num_actions, **kwargs),
                          {"num_actions": num_actions})


def rows_of(batch: dict) -> np.ndarray:
    """The storage rows a sampled batch came from, read back from the reward (see make_arrays)."""
    return batch["reward"].numpy().astype(np.int64)


@pytest.fixture
def cfg(tmp_path) -> ExperimentConfig:
    return tiny_config(tmp_path)


@pytest.fixture
def small_data() -> EpisodeDataset:
    """Six episodes of 12-20 steps with a learnable moving square."""
    return make_dataset([12, 20, 16, 14, 18, 13], moving_square=True, seed=3)
