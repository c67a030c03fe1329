"""Wall clock only between runs on one device: both branches, with histories from another device."""

from __future__ import annotations

import pytest
import torch

import wmhelpers.evaluation.wallclock as wallclock
from wmhelpers.device import device_record, same_device

HERE = device_record("cpu")


def _history(record):
    return {"step": [0, 5, 10], "wall_seconds": [0.0, 2.0, 4.0], "ms_per_step": 400.0, "train_seconds": 4.0,
            "device": f"{record['type']}: {record['name']}", "device_record": record,
            "val_next_frame_mse": [0.02, 0.01, 0.005]}


def test_same_device_compares_type_name_and_threads():
    assert same_device(HERE, dict(HERE))
    assert not same_device(HERE, dict(HERE, name="Some Other CPU"))
    assert not same_device(HERE, dict(HERE, threads=HERE["threads"] + 1))
    assert not same_device(HERE, None)


def test_a_run_from_this_device_keeps_its_measured_clock():
    calls = []
    hist = _history(HERE)
    out, notes = wallclock.on_this_device({"RSSM": hist}, "cpu", lambda name: calls.append(name) or 1.0)
    assert out["RSSM"] is hist and notes == [] and calls == []


def test_a_run_from_another_cpu_is_projected_and_labelled():
    hist = _history(dict(HERE, name="Intel(R) Xeon(R) Processor"))
    out, notes = wallclock.on_this_device({"RSSM": hist}, "cpu", lambda name: 250.0)
    got = out["RSSM"]
    assert got["wall_seconds"] == pytest.approx([0.0, 1.25, 2.5])  # steps x 250 ms measured here
    assert got["step"] == hist["step"] and got["val_next_frame_mse"] == hist["val_next_frame_mse"]
    assert "projected" in got["device"] and got["projected_from"]["ms_per_step"] == 400.0
    assert len(notes) == 1 and "Intel(R) Xeon(R)" in notes[0] and "250 ms/step" in notes[0]
    assert hist["wall_seconds"] == [0.0, 2.0, 4.0]  # the checkpoint's own history is untouched


def test_on_a_gpu_a_foreign_checkpoint_is_retrained_here(monkeypatch):
    gpu = {"type": "cuda", "name": "Tesla T4", "threads": None}
    monkeypatch.setattr(wallclock, "device_record", lambda device: gpu)
    assert wallclock.train_here(_history(HERE), torch.device("cuda"))       # CPU-trained: retrain on the GPU
    assert not wallclock.train_here(_history(gpu), torch.device("cuda"))    # trained on this GPU kind: keep
    monkeypatch.setattr(wallclock, "device_record", device_record)
    assert not wallclock.train_here(_history(dict(HERE, name="Other")), torch.device("cpu"))  # CPU: project
