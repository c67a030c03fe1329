"""Wall clock only between runs on one device: both branches, with histories from another device."""

from __future__ import annotations

import pytest
import torch

import wmhelpers.evaluation.wallclock as wallclock
from wmhelpers.device import device_record, same_device

HERE = device_record("cpu")
# "another CPU" is built from this one so it can never be the host, whatever the host is
# (a fixed name such as "Intel(R) Xeon(R) Processor" IS the host on some machines)
OTHER_NAME = f"not-this-cpu ({HERE['name']})"


def _history(record):
    return {"step": [0, 5, 10], "wall_seconds": [0.0, 2.0, 4.0], "ms_per_step": 400.0, "train_seconds": 4.0,
            "device": f"{record['type']}: {record['name']}", "device_record": record,
            "val_next_frame_mse": [0.02, 0.01, 0.005]}


def test_same_device_compares_type_name_and_threads():
    assert same_device(HERE, dict(HERE))
    assert not same_device(HERE, dict(HERE, name=OTHER_NAME))
    assert not same_device(HERE, dict(HERE, threads=HERE["threads"] + 1))
    assert not same_device(HERE, None)


def test_same_device_tells_apart_cpus_sold_under_one_name():
    amx = dict(HERE, isa="AVX512", avx2=True, avx512_bf16=True, amx=True)
    no_amx = dict(amx, amx=False)
    assert same_device(amx, dict(amx)) and not same_device(amx, no_amx)
    assert not same_device(amx, dict(amx, isa="AVX2"))


def test_an_old_record_without_cpu_features_is_compared_on_type_name_and_threads():
    old = {k: HERE[k] for k in ("type", "name", "threads")}  # written before the features were recorded
    assert same_device(old, HERE) and same_device(HERE, old)
    assert not same_device(dict(old, threads=HERE["threads"] + 1), HERE)
    assert not same_device(dict(old, name=OTHER_NAME), HERE)


def test_a_run_from_this_device_keeps_its_measured_clock():
    calls = []
    hist = _history(HERE)
    out, notes = wallclock.on_this_device({"RSSM": hist}, "cpu", lambda name: calls.append(name) or 1.0)
    assert out["RSSM"] is hist and notes == [] and calls == []


def test_a_run_from_another_cpu_is_projected_and_labelled():
    hist = _history(dict(HERE, name=OTHER_NAME))
    out, notes = wallclock.on_this_device({"RSSM": hist}, "cpu", lambda name: 250.0)
    got = out["RSSM"]
    assert got["wall_seconds"] == pytest.approx([0.0, 1.25, 2.5])  # steps x 250 ms measured here
    assert got["step"] == hist["step"] and got["val_next_frame_mse"] == hist["val_next_frame_mse"]
    assert "projected" in got["device"] and got["projected_from"]["ms_per_step"] == 400.0
    assert len(notes) == 1 and all(len(line) <= 110 for line in notes[0].splitlines())
    note = " ".join(notes[0].split())  # the note is wrapped to a 110-character page
    assert OTHER_NAME in note and "250 ms/step" in note
    assert hist["wall_seconds"] == [0.0, 2.0, 4.0]  # the checkpoint's own history is untouched


def test_on_a_gpu_a_foreign_checkpoint_is_retrained_here(monkeypatch):
    gpu = {"type": "cuda", "name": "Tesla T4", "threads": None}
    monkeypatch.setattr(wallclock, "device_record", lambda device: gpu)
    assert wallclock.train_here(_history(HERE), torch.device("cuda"))       # CPU-trained: retrain on the GPU
    assert not wallclock.train_here(_history(gpu), torch.device("cuda"))    # trained on this GPU kind: keep
    monkeypatch.setattr(wallclock, "device_record", device_record)
    assert not wallclock.train_here(_history(dict(HERE, name=OTHER_NAME)), torch.device("cpu"))  # CPU: project


def test_the_attention_cost_answer_follows_the_sweep():
    from wmhelpers.evaluation.wallclock import attention_cost_sentence

    sweep = {"seq_lens": [16, 64, 256, 1024], "batch": 8, "transformer_ms": [45.9, 143.8, 664.6, 4608.0],
             "gru_ms": [50.5, 179.9, 574.5, 2144.7]}
    clock = {"Transformer": {"ms_per_step": 700.0}}
    text = attention_cost_sentence(sweep, clock, batch_size=16, seq_len=16)
    assert text.startswith("At T = 16, attention's cost is not observable in a training step")
    assert "~13 % of it" in text and "-1 % of a step" in text and "from T = 256 on (665 against 574 ms)" in text
    sweep["transformer_ms"][0] = 120.0  # attention dearer at the training length by 2 x 69.5 ms = 20 % of a step
    text = attention_cost_sentence(sweep, clock, batch_size=16, seq_len=16)
    assert "is observable in a training step" in text and "+20 % of a step" in text
    assert "from T = 256 on" in text  # 64 is cheaper again, so 256
    sweep["transformer_ms"] = [60.0, 200.0, 700.0, 5000.0]
    assert "dearer backbone at every length timed" in attention_cost_sentence(sweep, clock, 16, 16)
    sweep["transformer_ms"] = [1.0, 2.0, 3.0, 4.0]
    assert "stays cheaper than the GRU up to T = 1024" in attention_cost_sentence(sweep, clock, 16, 16)


def test_a_timing_burst_leaves_the_random_state_as_it_was():
    from conftest import make_dataset, tiny_config

    from wmhelpers.models.rssm import RSSMWorldModel

    cfg = tiny_config(val_episodes=1)
    train, _ = make_dataset([12, 14, 13], seed=2).split(cfg)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert wallclock.burst_ms_per_step(RSSMWorldModel, cfg, train, 6, steps=1) > 0
    assert torch.equal(torch.rand(3), expected)
