"""EpisodeDataset (synthetic arrays) and load_or_collect (one real, tiny Atari collection)."""

from __future__ import annotations

import json
import shutil
import struct
import zipfile

import numpy as np
import pytest
import torch
from conftest import make_arrays, make_dataset, rows_of

import wmhelpers.data as wmdata
from wmhelpers.config import ExperimentConfig
from wmhelpers.data import EpisodeDataset, cache_paths, load_or_collect

# many short episodes of uneven length, with non-sorted ids, so boundaries are everywhere
LENGTHS = [3, 7, 2, 9, 5, 5, 1, 8, 4, 6, 7, 3, 10, 2, 6]
IDS = [14, 3, 7, 0, 11, 2, 9, 5, 1, 13, 6, 12, 4, 10, 8]


@pytest.fixture(scope="module")
def many_episodes() -> EpisodeDataset:
    return make_dataset(LENGTHS, episode_ids=IDS, seed=1)


# --------------------------------------------------------------------------------------------
# split
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 5])
def test_split_by_whole_episodes(many_episodes, k):
    cfg = ExperimentConfig(val_episodes=k)
    train, val = many_episodes.split(cfg)
    train_ids = set(train.arrays["episode"].tolist())
    val_ids = set(val.arrays["episode"].tolist())
    assert not train_ids & val_ids
    # the last k episodes in storage order (not the k largest ids)
    in_order = lambda d: list(dict.fromkeys(d.arrays["episode"].tolist()))  # noqa: E731  (ids in storage order)
    assert in_order(val) == IDS[-k:]
    assert in_order(train) == IDS[:-k]
    assert len(val) == sum(LENGTHS[-k:])
    assert len(train) + len(val) == len(many_episodes)
    # train is the prefix and val the suffix of the rows, all arrays sliced alike
    n_train = len(train)
    for name in wmdata.ARRAY_NAMES:
        assert np.array_equal(train.arrays[name], many_episodes.arrays[name][:n_train])
        assert np.array_equal(val.arrays[name], many_episodes.arrays[name][n_train:])
    assert train.num_actions == val.num_actions == many_episodes.num_actions


def test_split_needs_a_training_episode():
    data = make_dataset([4, 4])
    with pytest.raises(ValueError, match="split"):
        data.split(ExperimentConfig(val_episodes=2))
    train, val = data.split(ExperimentConfig(val_episodes=1))
    assert len(train) == len(val) == 4


# --------------------------------------------------------------------------------------------
# windows and sampling
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [1, 2, 5, 9, 10, 11])
def test_window_starts_match_brute_force(many_episodes, length):
    ep = many_episodes.arrays["episode"]
    expected = [s for s in range(len(ep) - length + 1) if len(set(ep[s : s + length])) == 1]
    assert many_episodes.window_starts(length).tolist() == expected


def test_sample_never_crosses_an_episode_boundary(many_episodes):
    gen = torch.Generator().manual_seed(0)
    T = 5
    seen_starts = set()
    ep = many_episodes.arrays["episode"]
    for _ in range(20):
        batch = many_episodes.sample(32, T, generator=gen)
        rows = rows_of(batch)  # [B, T]
        assert rows.shape == (32, T)
        # consecutive rows ...
        assert (np.diff(rows, axis=1) == 1).all()
        # ... of one episode
        assert (ep[rows] == ep[rows[:, :1]]).all()
        # obs came from the same rows as the reward (index encoded in pixel (0, 0))
        pix = (batch["obs"][:, :, :2, 0, 0] * 255).round().long().numpy()
        assert np.array_equal(pix[..., 0] + 256 * pix[..., 1], rows)
        seen_starts.update(rows[:, 0].tolist())
    valid = set(many_episodes.window_starts(T).tolist())
    assert seen_starts <= valid
    # episodes of exactly T steps are sampled too (no off-by-one at the end of an episode)
    starts = np.cumsum([0] + LENGTHS[:-1])
    exact = {int(s) for s, n in zip(starts, LENGTHS) if n == T}
    assert exact and exact <= seen_starts


def test_sample_shapes_dtypes_values(many_episodes):
    B, T = 16, 4
    batch = many_episodes.sample(B, T, generator=torch.Generator().manual_seed(1))
    assert set(batch) == {"obs", "action", "reward", "cont"}
    obs = batch["obs"]
    assert obs.shape == (B, T, 3, 64, 64) and obs.dtype == torch.float32
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    assert batch["action"].shape == (B, T) and batch["action"].dtype == torch.int64
    assert batch["reward"].shape == (B, T) and batch["reward"].dtype == torch.float32
    assert batch["cont"].shape == (B, T) and batch["cont"].dtype == torch.float32
    rows = rows_of(batch)
    a = many_episodes.arrays
    # channels first, scaled by 1/255, from exactly those rows
    expected_obs = torch.from_numpy(a["obs"][rows]).permute(0, 1, 4, 2, 3).float() / 255.0
    assert torch.allclose(obs, expected_obs, atol=1e-7, rtol=0)
    assert torch.equal(batch["action"], torch.from_numpy(a["action"][rows]))
    # cont == 0 exactly where terminated, 1 elsewhere (truncation does not end cont)
    assert torch.equal(batch["cont"], torch.from_numpy((~a["terminated"][rows]).astype(np.float32)))


def test_cont_is_zero_at_terminal_steps_only():
    # one terminated and one truncated episode of exactly the window length: both must be sampled
    data = make_dataset([4, 4], terminated_episodes={0})
    batch = data.fixed_windows(2, 4)
    assert batch["start"].tolist() == [0, 4]
    assert batch["cont"].tolist() == [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]


def test_sample_is_reproducible_with_a_generator(many_episodes):
    a = many_episodes.sample(8, 3, generator=torch.Generator().manual_seed(5))
    b = many_episodes.sample(8, 3, generator=torch.Generator().manual_seed(5))
    c = many_episodes.sample(8, 3, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["reward"], c["reward"])


def test_sample_too_long_raises(many_episodes):
    with pytest.raises(ValueError, match="11"):
        many_episodes.sample(2, max(LENGTHS) + 1)


def test_fixed_windows_repeatable_and_seeded(many_episodes):
    a = many_episodes.fixed_windows(10, 3, seed=0)
    b = many_episodes.fixed_windows(10, 3, seed=0)
    c = many_episodes.fixed_windows(10, 3, seed=1)
    assert set(a) == {"obs", "action", "reward", "cont", "start"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["start"], c["start"])
    starts = a["start"].numpy()
    assert (np.diff(starts) > 0).all()  # sorted, no repeats when there are enough windows
    assert np.array_equal(rows_of(a)[:, 0], starts)
    assert set(starts.tolist()) <= set(many_episodes.window_starts(3).tolist())


def test_fixed_windows_more_than_available_repeats():
    data = make_dataset([3, 3])  # two windows of length 3
    out = data.fixed_windows(5, 3, seed=0)
    assert len(out["start"]) == 5 and set(out["start"].tolist()) == {0, 3}


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------
def test_fingerprint_stable_and_sensitive():
    arrays = make_arrays([5, 6, 7], seed=2)
    fp = EpisodeDataset({k: v.copy() for k, v in arrays.items()}, {"num_actions": 6}).fingerprint()
    again = EpisodeDataset({k: v.copy() for k, v in arrays.items()}, {"num_actions": 6, "other": 1})
    assert again.fingerprint() == fp
    assert len(fp) == 64 and int(fp, 16) >= 0

    one_pixel = {k: v.copy() for k, v in arrays.items()}
    one_pixel["obs"][10, 40, 40, 2] ^= 1
    assert EpisodeDataset(one_pixel, {"num_actions": 6}).fingerprint() != fp

    other_action = {k: v.copy() for k, v in arrays.items()}
    other_action["action"][0] = (other_action["action"][0] + 1) % 6
    assert EpisodeDataset(other_action, {"num_actions": 6}).fingerprint() != fp

    assert EpisodeDataset({k: v.copy() for k, v in arrays.items()}, {"num_actions": 7}).fingerprint() != fp


# --------------------------------------------------------------------------------------------
# load_or_collect: one real Boxing collection (1,000 steps) for the whole module
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def boxing(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxing")
    cfg = ExperimentConfig.smoke(data_dir=str(root), device="cpu")
    npz, meta = cache_paths(cfg)
    assert not npz.exists() and not meta.exists()
    data = load_or_collect(cfg, progress=False, verbose=False)
    return cfg, data, npz, meta


def _copy_cache(boxing, dest):
    """The collected cache copied to `dest`, so each test can damage its own copy."""
    cfg, data, npz, meta = boxing
    new_cfg = cfg.replace(data_dir=str(dest))
    new_npz, new_meta = cache_paths(new_cfg)
    shutil.copy(npz, new_npz)
    shutil.copy(meta, new_meta)
    return new_cfg, new_npz, new_meta


def _no_collect(*args, **kwargs):
    raise AssertionError("collect() was called although a valid cache exists")


class CollectSpy:
    """Stands in for collect(): records the configs and returns the real data, relabelled for cfg."""

    def __init__(self, data):
        self.data, self.calls = data, []

    def __call__(self, cfg, progress=True):
        self.calls.append(cfg)
        meta = dict(self.data.meta, seed=cfg.seed, env_steps=cfg.env_steps, collect_streams=cfg.collect_streams,
                    frameskip=cfg.frameskip)
        return EpisodeDataset(self.data.arrays, meta)


def test_collected_boxing_data(boxing):
    cfg, data, npz, meta = boxing
    assert npz.exists() and meta.exists()
    assert not list(npz.parent.glob("*.tmp*"))
    assert len(data) == cfg.env_steps
    assert data.num_actions == 18  # Boxing's full action set
    a = data.arrays
    assert a["obs"].shape == (cfg.env_steps, 64, 64, 3) and a["obs"].dtype == np.uint8
    assert a["action"].dtype == np.int64 and a["reward"].dtype == np.float32 and a["episode"].dtype == np.int32
    assert a["action"].min() >= 0 and a["action"].max() < 18
    # every episode is one contiguous run, ends with terminated or truncated, and nowhere else
    ends = a["terminated"] | a["truncated"]
    ep = a["episode"]
    assert len(np.unique(ep)) == data.num_episodes
    last_rows = np.r_[np.flatnonzero(ep[1:] != ep[:-1]), len(ep) - 1]
    assert np.array_equal(np.flatnonzero(ends), last_rows)
    assert json.loads(meta.read_text())["fingerprint"] == data.fingerprint()
    train, val = data.split(cfg)
    assert val.num_episodes == cfg.val_episodes and train.num_episodes >= 1


def test_second_call_loads_the_cache(boxing, tmp_path, monkeypatch, capsys):
    cfg, data, _, _ = boxing
    cfg2, npz2, _ = _copy_cache(boxing, tmp_path)
    monkeypatch.setattr(wmdata, "collect", _no_collect)
    loaded = load_or_collect(cfg2, progress=False)
    assert "Loaded" in capsys.readouterr().out
    assert loaded.fingerprint() == data.fingerprint()
    for k in wmdata.ARRAY_NAMES:
        assert np.array_equal(loaded.arrays[k], data.arrays[k]) and loaded.arrays[k].dtype == data.arrays[k].dtype
    assert loaded.num_actions == 18


def test_changed_seed_recollects(boxing, tmp_path, monkeypatch):
    cfg, data, _, _ = boxing
    cfg2, npz2, meta2 = _copy_cache(boxing, tmp_path)
    spy = CollectSpy(data)
    monkeypatch.setattr(wmdata, "collect", spy)
    load_or_collect(cfg2.replace(seed=1), progress=False, verbose=False)
    assert [c.seed for c in spy.calls] == [1]
    # the seed-0 cache is untouched and still used for seed 0
    monkeypatch.setattr(wmdata, "collect", _no_collect)
    assert load_or_collect(cfg2, progress=False, verbose=False).fingerprint() == data.fingerprint()


def test_changed_setting_in_same_file_recollects_and_replaces(boxing, tmp_path, monkeypatch, capsys):
    cfg, data, _, _ = boxing
    cfg2, npz2, meta2 = _copy_cache(boxing, tmp_path)
    changed = cfg2.replace(collect_streams=1)  # not part of the file name, only of the metadata
    assert cache_paths(changed)[0] == npz2
    spy = CollectSpy(data)
    monkeypatch.setattr(wmdata, "collect", spy)
    load_or_collect(changed, progress=False)
    out = capsys.readouterr().out
    assert len(spy.calls) == 1
    recollect = [line for line in out.splitlines() if line.startswith("Recollecting")]
    assert len(recollect) == 1 and "collect_streams" in recollect[0]
    assert json.loads(meta2.read_text())["collect_streams"] == 1
    monkeypatch.setattr(wmdata, "collect", _no_collect)
    load_or_collect(changed, progress=False, verbose=False)  # the replaced cache now matches


def _deflate_data_offset(npz_path, member):
    """Byte offset of a member's compressed data inside a zip (.npz) file."""
    with zipfile.ZipFile(npz_path) as zf:
        info = zf.getinfo(member)
    raw = npz_path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def _truncate(npz, meta):
    raw = npz.read_bytes()
    npz.write_bytes(raw[: len(raw) // 2])


def _garbage(npz, meta):
    npz.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _bad_deflate(npz, meta):
    # the zip directory stays intact; the deflate stream of obs.npy starts with the reserved
    # block type 3 (bits 1-2 of the first byte), which zlib rejects before any CRC check
    raw = bytearray(npz.read_bytes())
    raw[_deflate_data_offset(npz, "obs.npy")] = 0xFF
    npz.write_bytes(bytes(raw))


def _changed_pixel(npz, meta):
    # a valid npz whose arrays no longer match the recorded fingerprint
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["obs"][0, 0, 0, 0] ^= 1
    np.savez_compressed(npz, **arrays)


def _broken_json(npz, meta):
    meta.write_text(meta.read_text()[:20])


def _missing_json(npz, meta):
    meta.unlink()


def _missing_npz(npz, meta):
    npz.unlink()


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _garbage,
        _bad_deflate,
        _changed_pixel,
        _broken_json,
        _missing_json,
        _missing_npz,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_damaged_cache_is_reported_and_recollected(boxing, tmp_path, monkeypatch, capsys, damage):
    cfg, data, _, _ = boxing
    cfg2, npz2, meta2 = _copy_cache(boxing, tmp_path)
    damage(npz2, meta2)
    spy = CollectSpy(data)
    monkeypatch.setattr(wmdata, "collect", spy)
    got = load_or_collect(cfg2, progress=False)
    out = capsys.readouterr().out
    assert len(spy.calls) == 1
    assert got.fingerprint() == data.fingerprint()
    recollect = [line for line in out.splitlines() if line.startswith("Recollecting")]
    assert len(recollect) == 1, out
    assert str(npz2) in recollect[0]
    assert "Traceback" not in out
    # the next line is the normal report: the reason fitted on one line
    lines = out.splitlines()
    assert lines[lines.index(recollect[0]) + 1].startswith("Collected")
    # the cache was rewritten and is valid again
    monkeypatch.setattr(wmdata, "collect", _no_collect)
    assert load_or_collect(cfg2, progress=False, verbose=False).fingerprint() == data.fingerprint()
    assert not list(npz2.parent.glob("*.tmp*"))
