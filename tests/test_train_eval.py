"""The trainer, the neutral metric, rollout evaluation, results and the train-rssm CLI."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_dataset, tiny_config

import wmhelpers as wm
from wmhelpers.training import loop as tr

EVAL = dict(context=4, horizon=3, eval_windows=6, eval_samples=2, train_steps=6, log_every=2, val_windows=4)


@pytest.fixture
def cfg(tmp_path):
    return tiny_config(tmp_path, **EVAL)


@pytest.fixture
def data():
    return make_dataset([20, 24, 18, 22], moving_square=True, seed=5)


def _models(cfg, n):
    return {"RSSM": wm.RSSMWorldModel.from_config(cfg, n), "Transformer": wm.TransformerWorldModel.from_config(cfg, n)}


@pytest.mark.parametrize("cls", [wm.RSSMWorldModel, wm.TransformerWorldModel])
def test_history_fields_and_clock(cls, cfg, data):
    train, val = data.split(cfg.replace(val_episodes=1))
    model = cls.from_config(cfg, data.num_actions)
    h = wm.train_world_model(model, train, val, cfg, progress=False)
    assert h["step"] == [0, 2, 4, 6]
    assert len(h["wall_seconds"]) == len(h["step"]) == len(h["val_next_frame_mse"])
    assert all(b >= a for a, b in zip(h["wall_seconds"], h["wall_seconds"][1:]))
    assert h["wall_seconds"][0] == 0.0 and h["wall_seconds"][-1] > 0
    for term in ("recon_loss", "dyn_loss", "rep_loss", "reward_loss", "cont_loss", "kl", "total"):
        assert len(h["train"][term]) == 3 and len(h["val"][term]) == 4
    assert h["ms_per_step"] == pytest.approx(1000 * h["train_seconds"] / cfg.train_steps)


def test_same_seed_same_history(cfg, data):
    train, val = data.split(cfg.replace(val_episodes=1))
    runs = []
    for _ in range(2):
        model = wm.TransformerWorldModel.from_config(cfg, data.num_actions)
        runs.append(wm.train_world_model(model, train, val, cfg, progress=False))
    assert runs[0]["train"] == runs[1]["train"]
    assert runs[0]["val"] == runs[1]["val"]
    assert runs[0]["val_next_frame_mse"] == runs[1]["val_next_frame_mse"]


def test_nan_loss_stops_with_step_and_term(cfg, data, monkeypatch):
    train, val = data.split(cfg.replace(val_episodes=1))
    model = wm.RSSMWorldModel.from_config(cfg, data.num_actions)
    real = model.loss_terms
    calls = {"n": 0}

    def poisoned(batch, generator=None, sample=True):
        total, terms = real(batch, generator=generator, sample=sample)
        calls["n"] += model.training  # training steps only, not validation
        if model.training and calls["n"] == 3:  # one bad step is enough: NaN stays in the running sum
            terms["reward_loss"] = torch.tensor(float("nan"))
        return total, terms

    monkeypatch.setattr(model, "loss_terms", poisoned)
    with pytest.raises(FloatingPointError, match=r"reward_loss.*between step 3 and step 4"):
        wm.train_world_model(model, train, val, cfg, progress=False)


def test_neutral_metric_is_one_function_for_both(cfg, data, monkeypatch):
    """next_frame_mse only calls predict_next + decode, and equals a hand computation for both models."""
    _, val = data.split(cfg.replace(val_episodes=1))
    windows = tr.validation_windows(val, cfg)
    for model in _models(cfg, data.num_actions).values():
        model.eval()
        with torch.no_grad():
            pred = model.decode(model.predict_next(windows["obs"], windows["action"]))
        expected = float((pred - windows["obs"][:, 1:]).pow(2).mean())
        assert tr.next_frame_mse(model, windows) == pytest.approx(expected, rel=1e-5)
    assert "kind" not in tr.next_frame_mse.__code__.co_names  # never asks which model it holds


def test_save_results_is_plain_json(cfg, data, tmp_path):
    train, val = data.split(cfg.replace(val_episodes=2))
    models = _models(cfg, data.num_actions)
    hist = {n: wm.train_world_model(m, train, val, cfg.replace(train_steps=2), progress=False)
            for n, m in models.items()}
    res = wm.evaluate_rollouts(models, val, cfg, progress=False)
    path = wm.save_results(tmp_path / "r.json", res, hist, cfg, data, device="cpu")
    doc = json.loads(path.read_text())
    assert doc["data_fingerprint"] == data.fingerprint()
    assert doc["psnr"]["models"]["Transformer"]["mode"]["changed"]["mean"]
    assert doc["psnr"]["baselines"]["copy_last"]["whole"]["ci"]
    assert doc["training"]["RSSM"]["ms_per_step"] > 0
    assert "raw" not in doc["psnr"]
    assert wm.load_results(path)["config"] == cfg.to_dict()
    facts = wm.verdict.pair_facts(res, wm.seeds.merge(res, hist, cfg, None), cfg)
    assert set(facts["lead"]["whole"]) == {1, 3}  # only horizons that exist (H=3)


def test_train_rssm_cli_smoke_writes_loadable_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from wmhelpers.__main__ import main

    assert main(["train-rssm", "--smoke", "--out", "ck/p03_rssm.pt"]) == 0
    cfg = wm.ExperimentConfig.smoke()
    data = wm.load_or_collect(cfg, progress=False, verbose=False)
    model, hist = wm.load_checkpoint("ck/p03_rssm.pt", expect=cfg, data=data, device="cpu")
    assert isinstance(model, wm.RSSMWorldModel)
    assert hist["steps"] == cfg.train_steps and len(hist["val_next_frame_mse"]) == len(hist["step"])
    with pytest.raises(wm.CheckpointError, match="train_steps"):
        wm.load_checkpoint("ck/p03_rssm.pt", expect=cfg.replace(train_steps=cfg.train_steps + 1), data=data)
