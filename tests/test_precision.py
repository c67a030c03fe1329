"""Precision is part of the experiment: amp="auto" is fp32 on every device, a model records the
precision it trained in, and nothing trained in one precision is compared with another's.

No test reads the host's CPU: a fake CPU (tests/fake_device.py) stands in where the CPU matters."""

from __future__ import annotations

import pytest
import torch
from conftest import NUM_ACTIONS, make_dataset, tiny_config
from fake_device import fake_cpu

import wmhelpers.device as dev
from wmhelpers.config import ExperimentConfig
from wmhelpers.evaluation import seeds as seedstats
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.notebook_tools import describe
from wmhelpers.runs.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from wmhelpers.training.loop import train_world_model


@pytest.mark.parametrize("features", ["avx2,avx512_bf16,amx", "avx2,avx512_bf16", "avx2", ""])
def test_auto_is_fp32_on_every_cpu_kind_amx_included(monkeypatch, features):
    fake_cpu(monkeypatch, "Intel(R) Xeon(R) Processor", features)
    assert dev.device_record("cpu")["amx"] == ("amx" in features)  # the fake CPU is what the package sees
    assert dev.resolve_amp_dtype("auto", "cpu") is None and ExperimentConfig().precision == "fp32"
    line = describe.describe_run(tiny_config(amp="auto"))
    assert "precision: fp32" in line and "25.70" in line and "27.33" in line  # the measured reason, on the line


def test_the_gpu_follows_the_same_rule_and_bf16_is_only_ever_asked_for():
    for device in ("cuda", "mps", "cpu"):
        assert dev.resolve_amp_dtype("auto", device) is None and dev.resolve_amp_dtype("off", device) is None
        assert dev.resolve_amp_dtype("bf16", device) == torch.bfloat16
    # the GPU preset changes the budget only: both models of a GPU comparison share one precision
    assert ExperimentConfig.gpu().precision == ExperimentConfig().precision == "fp32"
    assert ExperimentConfig.gpu(amp="bf16").precision == "bf16"
    with pytest.raises(ValueError, match="amp"):
        dev.resolve_amp_dtype("fp8", "cpu")
    with pytest.raises(ValueError, match="amp"):
        ExperimentConfig(amp="fp8")


def test_a_trained_model_records_its_precision(tmp_path):
    data = make_dataset([12, 14, 13], seed=2, moving_square=True)
    cfg = tiny_config(tmp_path, train_steps=2, log_every=1, val_windows=2, val_episodes=1, amp="bf16")
    train, val = data.split(cfg)
    model = RSSMWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    assert train_world_model(model, train, val, cfg, progress=False)["precision"] == "bf16"


def _saved(tmp_path, precision):
    data = make_dataset([6, 7, 8], seed=4)
    cfg = tiny_config(tmp_path)
    model = RSSMWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    history = {"steps": 1} | ({"precision": precision} if precision else {})
    return save_checkpoint(tmp_path / "rssm.pt", model, cfg, history, data), cfg, data


def test_a_bf16_checkpoint_is_refused_against_an_fp32_experiment_and_the_error_names_the_field(tmp_path):
    path, cfg, data = _saved(tmp_path, "bf16")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expect=cfg.replace(amp="auto"), data=data, device="cpu")
    assert "precision: checkpoint trained in bf16 != expected fp32" in str(err.value)
    load_checkpoint(path, expect=cfg.replace(amp="bf16"), data=data, device="cpu")  # its own precision loads


def test_a_checkpoint_from_before_the_field_reads_as_fp32(tmp_path):
    path, cfg, data = _saved(tmp_path, None)
    load_checkpoint(path, expect=cfg.replace(amp="auto"), data=data, device="cpu")
    load_checkpoint(path, expect=cfg.replace(amp="off"), data=data, device="cpu")  # "off" is fp32 too
    with pytest.raises(CheckpointError, match="precision: checkpoint trained in fp32 != expected bf16"):
        load_checkpoint(path, expect=cfg.replace(amp="bf16"), data=data, device="cpu")


def _run(value, precision=None):
    curve = {m: {"mean": [value] * 3} for m in ("whole", "changed")}
    model = {"psnr": {"mode": curve}} | ({"precision": precision} if precision else {})
    return {"models": {"RSSM": model, "Transformer": model}, "baselines": {}}


def _results():
    curves = {"mode": {m: {"mean": [25.0] * 3} for m in ("whole", "changed")}}
    return {"models": {"RSSM": curves, "Transformer": curves}, "baselines": {}}


def _histories(precision):
    return {name: {"precision": precision} for name in ("RSSM", "Transformer")}


def test_a_bf16_run_is_never_merged_into_the_verdict_of_fp32_seeds():
    cfg = ExperimentConfig()
    doc = {"config": cfg.to_dict(), "runs": {s: _run(20.0 + int(s)) for s in ("0", "1", "2", "3")}}  # fp32, old
    mine = _run(25.0, "bf16")
    runs = seedstats.seed_runs(doc, mine, 0)
    assert list(runs) == ["0"] and runs["0"] is mine
    merged = seedstats.merge(_results(), _histories("bf16"), cfg.replace(amp="bf16"), doc)
    assert merged["borrowed"] is None and list(merged["runs"]) == ["0"]
    assert any("precision" in d and "bf16" in d for d in merged["differences"])
    # the same run in fp32 joins the file's seeds, replacing its own seed
    runs = seedstats.seed_runs(doc, _run(25.0, "fp32"), 0)
    assert list(runs) == ["0", "1", "2", "3"] and runs["0"]["models"]["RSSM"]["psnr"]["mode"]["whole"]["mean"][0] == 25
    merged = seedstats.merge(_results(), _histories("fp32"), cfg, doc)
    assert merged["borrowed"] is doc and list(merged["runs"]) == ["0", "1", "2", "3"] and not merged["differences"]
