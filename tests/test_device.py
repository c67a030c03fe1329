"""The device record tells CPUs apart, and MPS is used only after its self-check (tested with
stand-ins: no test here depends on the host's CPU, GPU or thread count)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

import wmhelpers.device as dev
from wmhelpers.config import ExperimentConfig
from wmhelpers.notebook_tools import describe


# ---- the record --------------------------------------------------------------------------------------
def test_a_cpu_record_names_what_changes_a_step_time(monkeypatch):
    flags = {"_is_avx2_supported": True, "_is_avx512_bf16_supported": True, "_is_amx_tile_supported": False}
    monkeypatch.setattr(dev, "_cpu_flag", lambda name: flags.get(name, False))
    monkeypatch.setattr(dev, "cpu_model", lambda: "Some CPU")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    rec = dev.device_record("cpu")
    assert rec["name"] == "Some CPU" and rec["threads"] == 2
    assert set(dev.CPU_FEATURE_KEYS) <= set(rec) and rec["avx512_bf16"] and not rec["amx"] and rec["avx2"]
    assert isinstance(rec["isa"], str)
    assert dev.device_name("cpu").startswith("cpu: Some CPU, 2 threads, ")
    assert "AVX-512 BF16" in dev.device_name("cpu") and "AMX" not in dev.device_name("cpu")
    flags["_is_amx_tile_supported"] = True
    assert dev.device_name("cpu").endswith("AVX-512 BF16, AMX") and not dev.same_device(rec, dev.device_record("cpu"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert dev.device_name("cpu").startswith("cpu: Some CPU, 1 thread, ")


# ---- MPS only after a self-check -------------------------------------------------------------------
@pytest.fixture
def mac(monkeypatch):
    """A machine without CUDA whose torch says MPS is available; the registered check is restored after."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(dev, "_mps_check", dev._mps_check)
    monkeypatch.setattr(dev, "_mps_refusals", [])


def test_mps_is_picked_when_its_self_check_passes(mac):
    calls = []
    dev.set_mps_check(lambda: calls.append(1))  # returns None: fit
    assert ExperimentConfig().resolve_device() == torch.device("mps")
    assert ExperimentConfig().resolve_device() == torch.device("mps") and calls == [1]  # checked once


@pytest.mark.parametrize("check, why", [
    (lambda: "training loss is not finite on mps", "not finite"),
    (lambda: (_ for _ in ()).throw(RuntimeError("op not implemented for MPS")), "op not implemented"),
    (None, "no self-check"),
])
def test_mps_is_refused_with_one_line_saying_why(mac, capsys, check, why):
    dev.set_mps_check(check)
    assert ExperimentConfig().resolve_device() == torch.device("cpu")
    assert ExperimentConfig().resolve_device() == torch.device("cpu")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and why in printed[0] and "CPU" in printed[0]  # said once
    line = describe.describe_run(ExperimentConfig(amp="off")).replace("\n  ", " ")  # undo the 110-char wrap
    assert line.splitlines()[0].startswith("device: cpu") and why in line.splitlines()[0]
    assert all(len(x) <= 110 for x in describe.describe_run(ExperimentConfig(amp="off")).splitlines())


def test_an_explicit_device_is_not_second_guessed(mac):
    dev.set_mps_check(lambda: "would refuse")
    assert tiny_config(device="mps").resolve_device() == torch.device("mps")
    assert dev.mps_refused() is None  # never checked


def test_the_self_check_passes_for_a_device_equal_to_the_cpu_and_catches_bad_results(monkeypatch):
    from wmhelpers.runs import benchmark

    assert dev._mps_check is benchmark.mps_self_check  # registered when the package is imported
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    assert benchmark.mps_self_check(device="cpu", reference="cpu") is None  # the real steps, on the CPU twice
    assert torch.equal(torch.rand(2), expected)  # the global RNG is left where it was

    real = benchmark._step_results
    seen = []

    def spoiled(how):
        def results(model, cfg, batch, context):
            out = real(model, cfg, batch, context)
            seen.append(1)
            if len(seen) % 2 == 0:  # the second model of a check: the "device"
                out[how[0]] = how[1](out[how[0]])
            return out
        return results

    monkeypatch.setattr(benchmark, "_step_results", spoiled(("train_terms", lambda t: t * float("nan"))))
    assert "not finite" in benchmark.mps_self_check(device="cpu", reference="cpu")
    monkeypatch.setattr(benchmark, "_step_results", spoiled(("imagined_reward", lambda t: t + 0.5)))
    assert "imagined reward differs" in benchmark.mps_self_check(device="cpu", reference="cpu")
