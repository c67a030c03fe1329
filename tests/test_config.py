"""ExperimentConfig: serialisation, the smoke switch, validation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from wmhelpers.config import ExperimentConfig


@pytest.mark.parametrize(
    "cfg",
    [
        ExperimentConfig(),
        ExperimentConfig.smoke(),
        ExperimentConfig(conv_widths=(8, 16, 24, 32), seed=7, lr=1e-3, amp="off", device="cpu",
                         changed_threshold=0.1, data_dir="/tmp/elsewhere"),
    ],
    ids=["default", "smoke", "custom"],
)
def test_dict_round_trip_through_json(cfg):
    d = cfg.to_dict()
    text = json.dumps(d)  # plain JSON types only
    back = ExperimentConfig.from_dict(json.loads(text))
    assert back == cfg
    assert isinstance(back.conv_widths, tuple)
    assert hash(back) == hash(cfg)  # frozen dataclass: tuples, not lists, after the round trip
    assert set(d) == {f.name for f in dataclasses.fields(ExperimentConfig)}


def test_to_dict_has_only_plain_types():
    def plain(v):
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool))

    d = ExperimentConfig().to_dict()
    bad = {k: type(v).__name__ for k, v in d.items() if not plain(v)}
    assert not bad


def test_from_dict_accepts_partial_dict():
    assert ExperimentConfig.from_dict({"seed": 3}) == ExperimentConfig(seed=3)


def test_smoke_is_small_and_flagged():
    smoke, full = ExperimentConfig.smoke(), ExperimentConfig()
    assert smoke.smoke_mode and not full.smoke_mode
    assert smoke.env_steps < full.env_steps
    assert smoke.train_steps < full.train_steps
    assert ExperimentConfig.smoke(seed=5).seed == 5


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_from_env_smoke(monkeypatch, value):
    monkeypatch.setenv("WM_SMOKE", value)
    cfg = ExperimentConfig.from_env()
    assert cfg == ExperimentConfig.smoke()
    assert cfg.smoke_mode
    assert ExperimentConfig.from_env(seed=4) == ExperimentConfig.smoke(seed=4)


@pytest.mark.parametrize("value", [None, "0", "", "no"])
def test_from_env_default(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("WM_SMOKE", raising=False)
    else:
        monkeypatch.setenv("WM_SMOKE", value)
    cfg = ExperimentConfig.from_env()
    assert cfg == ExperimentConfig()
    assert not cfg.smoke_mode
    assert ExperimentConfig.from_env(seed=4) == ExperimentConfig(seed=4)


@pytest.mark.parametrize(
    "bad, key",
    [
        (dict(frame_size=32), "frame_size"),
        (dict(conv_widths=(8, 8, 8)), "conv_widths"),
        (dict(context=1), "context"),
        (dict(tf_dim=30, tf_heads=4), "tf_dim"),
        (dict(amp="fp16"), "amp"),
        (dict(batch_size=0), "batch_size"),
        (dict(seq_len=-1), "seq_len"),
        (dict(env_steps=0), "env_steps"),
        (dict(horizon=0), "horizon"),
        (dict(train_steps=0), "train_steps"),
        (dict(tf_heads=0), "tf_heads"),
        (dict(val_episodes=0), "val_episodes"),
        (dict(collect_streams=0), "collect_streams"),
    ],
)
def test_bad_values_raise_value_error(bad, key):
    with pytest.raises(ValueError, match=key):
        ExperimentConfig(**bad)


def test_all_problems_reported_together():
    with pytest.raises(ValueError) as info:
        ExperimentConfig(frame_size=32, amp="fp16", batch_size=0)
    msg = str(info.value)
    assert "frame_size" in msg and "amp" in msg and "batch_size" in msg


def test_replace_validates_and_keeps_original():
    cfg = ExperimentConfig()
    assert cfg.replace(seed=2).seed == 2 and cfg.seed == 0
    with pytest.raises(ValueError):
        cfg.replace(frame_size=48)

