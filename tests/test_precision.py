"""amp="auto" on a CPU: bf16 only where it was MEASURED faster, remembered per CPU in a JSON cache.

Every test here uses stand-in timers and stand-in CPU flags, so none depends on the host's CPU
(the real timer is run once, on a tiny model, to show it times a real training step)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config

import wmhelpers.device as dev
from wmhelpers.notebook_tools import describe


class StandInTimer:
    """timer(amp, device) -> ms from a table; counts its calls and what the global RNG did."""

    def __init__(self, fp32_ms, bf16_ms):
        self.ms = {"off": fp32_ms, "bf16": bf16_ms}
        self.calls = []

    def __call__(self, amp, device):
        self.calls.append(amp)
        torch.manual_seed(12345)  # a real timer builds a model: it reseeds and draws
        torch.rand(3)
        return self.ms[amp]


@pytest.fixture
def candidate(monkeypatch, tmp_path):
    """A CPU where bf16 is a candidate (AMX or AVX-512 BF16), a private cache file, no answers remembered."""
    monkeypatch.setenv(dev.PRECISION_CACHE_ENV, str(tmp_path / "precision.json"))
    monkeypatch.setattr(dev, "_precision_choices", {})
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: True)
    return tmp_path / "precision.json"


def test_bf16_is_picked_when_measured_faster_and_both_times_are_kept(candidate):
    timer = StandInTimer(fp32_ms=400.0, bf16_ms=220.0)
    choice = dev.precision_choice("cpu", timer)
    assert choice["dtype"] == torch.bfloat16 and choice["source"] == "measured"
    assert (choice["fp32_ms"], choice["bf16_ms"]) == (400.0, 220.0) and sorted(timer.calls) == ["bf16", "off"]
    assert dev.resolve_amp_dtype("auto", "cpu", timer) == torch.bfloat16 and len(timer.calls) == 2  # asked once
    entry = json.loads(candidate.read_text())[dev.precision_key("cpu")]
    assert entry["choice"] == "bf16" and entry["fp32_ms"] == 400.0 and entry["bf16_ms"] == 220.0


@pytest.mark.parametrize("bf16_ms", [500.0, 400.0])  # slower, and a tie: fp32 either way
def test_fp32_is_kept_unless_bf16_was_measured_faster(candidate, bf16_ms):
    timer = StandInTimer(fp32_ms=400.0, bf16_ms=bf16_ms)
    assert dev.resolve_amp_dtype("auto", "cpu", timer) is None
    assert json.loads(candidate.read_text())[dev.precision_key("cpu")]["choice"] == "fp32"


def test_a_cached_choice_is_reused_by_a_later_process_without_timing(candidate, monkeypatch):
    dev.precision_choice("cpu", StandInTimer(400.0, 220.0))
    monkeypatch.setattr(dev, "_precision_choices", {})  # a new process: only the file remains
    timer = StandInTimer(400.0, 220.0)
    choice = dev.precision_choice("cpu", timer)
    assert timer.calls == [] and choice["source"] == "cached" and choice["dtype"] == torch.bfloat16
    assert (choice["fp32_ms"], choice["bf16_ms"]) == (400.0, 220.0) and choice["cache"] == str(candidate)


def test_the_cache_is_per_cpu_and_thread_count(candidate, monkeypatch):
    dev.precision_choice("cpu", StandInTimer(400.0, 220.0))
    monkeypatch.setattr(dev, "_precision_choices", {})
    other = f"not-this-cpu ({dev.cpu_model()})"
    monkeypatch.setattr(dev, "cpu_model", lambda: other)
    timer = StandInTimer(400.0, 500.0)
    assert dev.resolve_amp_dtype("auto", "cpu", timer) is None and len(timer.calls) == 2  # another CPU: measured
    threads = torch.get_num_threads() + 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert dev.resolve_amp_dtype("auto", "cpu", timer) is None and len(timer.calls) == 4  # other threads: measured
    assert len(json.loads(candidate.read_text())) == 3


def test_a_cache_entry_cannot_pick_a_precision_its_own_numbers_call_slower(candidate, monkeypatch):
    candidate.write_text(json.dumps({dev.precision_key("cpu"): {"choice": "bf16", "fp32_ms": 300.0,
                                                                "bf16_ms": 480.0}}))
    timer = StandInTimer(400.0, 220.0)
    assert dev.resolve_amp_dtype("auto", "cpu", timer) is None and timer.calls == []


def test_no_candidate_no_timing(candidate, monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: False)  # e.g. AVX2 only: bf16 emulated, 28x slower
    timer = StandInTimer(400.0, 1.0)
    assert dev.resolve_amp_dtype("auto", "cpu", timer) is None
    assert dev.precision_choice("cpu", timer)["source"] == "not a candidate"
    assert timer.calls == [] and not candidate.exists()


def test_gpu_keeps_its_rule_and_explicit_settings_are_obeyed(candidate):
    timer = StandInTimer(400.0, 1.0)
    assert dev.resolve_amp_dtype("auto", "cuda", timer) is None  # bf16 measured slower on an H100
    assert dev.resolve_amp_dtype("bf16", "cpu", timer) == torch.bfloat16
    assert dev.resolve_amp_dtype("off", "cpu", timer) is None
    assert timer.calls == []
    with pytest.raises(ValueError, match="amp"):
        dev.resolve_amp_dtype("fp8", "cpu")


def test_measuring_leaves_the_training_rng_where_it_was(candidate):
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    dev.precision_choice("cpu", StandInTimer(400.0, 220.0))  # the stand-in reseeds and draws
    assert torch.equal(torch.rand(4), expected)


def test_a_failing_timer_means_fp32_and_nothing_cached(candidate):
    def broken(amp, device):
        raise RuntimeError("no bf16 kernel")

    with pytest.warns(RuntimeWarning, match="no bf16 kernel"):
        assert dev.resolve_amp_dtype("auto", "cpu", broken) is None
    assert not candidate.exists()


def test_cache_location_follows_the_override_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(dev.PRECISION_CACHE_ENV, str(tmp_path / "x.json"))
    assert dev.precision_cache_path() == tmp_path / "x.json"
    monkeypatch.delenv(dev.PRECISION_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dev.precision_cache_path() == tmp_path / "xdg" / "wmhelpers" / "precision.json"


def test_the_device_line_shows_both_times_and_says_cached(candidate, monkeypatch):
    monkeypatch.setattr(dev, "_precision_timer", StandInTimer(400.0, 220.0))
    cfg = tiny_config(device="cpu", amp="auto")
    line = describe.describe_run(cfg)
    assert "400 ms in fp32 and 220 ms in bf16 (measured here)" in line and "bf16 is the faster" in line
    monkeypatch.setattr(dev, "_precision_choices", {})
    monkeypatch.setattr(dev, "_precision_timer", StandInTimer(1.0, 1.0))  # must not be asked
    line = describe.describe_run(cfg)
    assert "400 ms in fp32 and 220 ms in bf16 (cached" in line and "bf16 autocast" in line
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda: False)
    assert "not measured" in describe.describe_run(cfg) and "fp32" in describe.describe_run(cfg)


def test_the_registered_timer_times_a_real_training_step():
    from wmhelpers.runs import benchmark

    # registered when the package is imported (tests/fake_device.py swaps in a stand-in when it fakes CPU flags)
    assert dev._precision_timer is benchmark.precision_step_ms or dev._precision_timer.__module__ == "fake_device"
    ms = benchmark.precision_step_ms("off", "cpu", cfg=tiny_config(), num_actions=6, warmup=1, repeats=1)
    assert ms > 0
