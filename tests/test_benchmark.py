"""The speed helpers measure what they say (never how fast: times are not asserted), name their
device, take their sizes from the data and the config, and the conv stack runs in the precision asked for."""

from __future__ import annotations

import json
import time

import pytest
import torch
from conftest import NUM_ACTIONS, tiny_config

from wmhelpers import device
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.models.vae import CategoricalVAE
from wmhelpers.runs import benchmark


def _context(B=2, C=3, extra=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, C, 3, 64, 64, generator=g), torch.randint(NUM_ACTIONS, (B, C - 1 + extra), generator=g)


@pytest.fixture(scope="module")
def tf():
    return TransformerWorldModel.from_config(tiny_config(), NUM_ACTIONS, device="cpu").eval()


def test_kv_cache_speed_reports_rates_ratio_device_and_exactness(tf):
    obs, act = _context(extra=4)
    t = time.perf_counter()
    out = benchmark.kv_cache_speed(tf, obs, act, horizon=12, budget_s=0.3)  # 8 of 12 actions drawn at random
    assert time.perf_counter() - t < 10
    assert set(out) >= {"cached_steps_per_s", "recompute_steps_per_s", "ratio", "device", "exact", "backend"}
    assert out["exact"] is True
    assert out["ratio"] == pytest.approx(out["cached_steps_per_s"] / out["recompute_steps_per_s"])
    assert out["cached_steps_per_s"] > 0 and out["recompute_steps_per_s"] > 0 and out["repeats"] >= 1
    assert out["device"] == device.device_name("cpu") and out["backend"] == "eager (cpu)"
    assert (out["horizon"], out["batch"]) == (12, 2)
    json.dumps(out)  # JSON-ready
    assert not tf.training


@pytest.mark.parametrize("kind", ["transformer", "rssm"])
def test_imagination_fps_keeps_observe_off_the_clock(kind, tf, monkeypatch):
    """observe runs once per measurement, not once per timed repeat."""
    model = tf if kind == "transformer" else RSSMWorldModel.from_config(tiny_config(), NUM_ACTIONS, device="cpu")
    calls = []
    real = model.observe
    monkeypatch.setattr(model, "observe", lambda *a: calls.append(1) or real(*a))
    obs, act = _context()
    fps = benchmark.imagination_fps(model, obs, act, horizon=3, repeats=3)
    assert fps > 0 and len(calls) == 1


def test_attention_cost_sweep_sizes_from_config_and_data(tmp_path):
    cfg = tiny_config(tmp_path, sweep_seq_lens=(4, 6))
    out = benchmark.attention_cost_sweep(cfg, batch=2, repeats=1, warmup=0, device="cpu", num_actions=5)
    assert out["seq_lens"] == [4, 6] and out["num_actions"] == 5
    assert len(out["transformer_ms"]) == len(out["gru_ms"]) == 2
    assert out["device"] == device.device_name("cpu")


def test_benchmark_uses_the_public_device_helpers():
    assert benchmark.device_name is device.device_name and benchmark.median_ms is device.median_ms


@pytest.mark.parametrize("amp, dtype", [("auto", torch.float32), ("off", torch.float32), ("bf16", torch.bfloat16)])
def test_the_conv_stack_runs_in_the_precision_asked_for_on_any_cpu(amp, dtype):
    seen = []
    vae = CategoricalVAE(conv_widths=(8, 8, 8, 8), amp=amp)
    conv = next(m for m in vae.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    vae.encode(torch.rand(2, 3, 64, 64))
    assert seen == [dtype]
