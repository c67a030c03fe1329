"""Correct by construction: complete checkpoint checks, training that validation cannot move,
clear errors for bad input, and a training seed that is apart from the data."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
import torch
from conftest import NUM_ACTIONS, make_dataset, tiny_config

import wmhelpers.data as wmdata
from wmhelpers.config import BACKBONE_FIELDS, RUN_ENVIRONMENT_FIELDS, ExperimentConfig, fields_that_shape
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.runs.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from wmhelpers.training.loop import train_world_model, validation_loss, validation_windows

COMPARED = sorted(fields_that_shape("rssm"))  # the saved checkpoint below is an RSSM


def _other_value(value):
    """A value of the same type that differs (the stored dict is edited, so no validation runs)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, list):
        return value + value[-1:]
    raise TypeError(type(value))


@pytest.fixture(scope="module")
def saved_rssm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = tiny_config(tmp)
    data = make_dataset([6, 7, 8], seed=4)
    model = RSSMWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    path = save_checkpoint(tmp / "rssm.pt", model, cfg, {"steps": 1}, data)
    return cfg, data, path


def _with_experiment(path, tmp_path, **changes):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["experiment"] = {**ckpt["experiment"], **changes}
    out = tmp_path / "edited.pt"
    torch.save(ckpt, out)
    return out


def test_every_experiment_field_is_compared_or_listed_as_run_environment():
    assert "val_episodes" in COMPARED and "train_seed" in COMPARED and "kl_dyn_scale" in COMPARED
    every = {f.name for f in dataclasses.fields(ExperimentConfig)}
    assert set(RUN_ENVIRONMENT_FIELDS) <= every
    assert {f for names in BACKBONE_FIELDS.values() for f in names} <= every
    for kind in BACKBONE_FIELDS:  # a kind is compared on its own backbone's fields, never on another's
        assert set(BACKBONE_FIELDS[kind]) <= fields_that_shape(kind)
        assert fields_that_shape(kind) | set(RUN_ENVIRONMENT_FIELDS) | {
            f for k, names in BACKBONE_FIELDS.items() if k != kind for f in names} == every


@pytest.mark.parametrize("kind, cls", [("rssm", RSSMWorldModel), ("transformer", TransformerWorldModel)])
def test_another_backbones_fields_cannot_reach_this_models_weights(kind, cls):
    """Why a checkpoint may skip another backbone's fields: changing them builds the same model."""
    cfg = tiny_config()
    base = cls.from_config(cfg, NUM_ACTIONS, device="cpu")
    for other, names in BACKBONE_FIELDS.items():
        if other == kind:
            continue
        changed = {f: getattr(cfg, f) * 2 if not isinstance(getattr(cfg, f), float) else 0.25 for f in names}
        twin = cls.from_config(cfg.replace(**changed), NUM_ACTIONS, device="cpu")
        assert twin.model_config() == base.model_config()
        assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), twin.state_dict().values()))


def test_a_transformer_checkpoint_is_compared_on_its_own_backbone(tmp_path):
    cfg = tiny_config(tmp_path)
    data = make_dataset([6, 7, 8], seed=4)
    path = save_checkpoint(tmp_path / "tf.pt", TransformerWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu"),
                           cfg, {"steps": 1}, data)
    with pytest.raises(CheckpointError, match="tf_layers: checkpoint 2 != expected 3"):
        load_checkpoint(path, expect=cfg.replace(tf_layers=3), data=data, device="cpu")
    load_checkpoint(path, expect=cfg.replace(rssm_deter=64), data=data, device="cpu")  # the RSSM's field


@pytest.mark.parametrize("field", COMPARED)
def test_each_compared_field_is_named_when_it_differs(saved_rssm, tmp_path, field):
    cfg, data, path = saved_rssm
    stored = torch.load(path, map_location="cpu", weights_only=True)["experiment"][field]
    edited = _with_experiment(path, tmp_path, **{field: _other_value(stored)})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(edited, expect=cfg, data=data, device="cpu")
    assert f"{field}:" in str(info.value)
    assert "python -m wmhelpers train-rssm" in str(info.value)


@pytest.mark.parametrize("field", sorted(RUN_ENVIRONMENT_FIELDS))
def test_run_environment_fields_do_not_block_loading(saved_rssm, tmp_path, field):
    cfg, data, path = saved_rssm
    stored = torch.load(path, map_location="cpu", weights_only=True)["experiment"][field]
    edited = _with_experiment(path, tmp_path, **{field: _other_value(stored)})
    load_checkpoint(edited, expect=cfg, data=data, device="cpu")


def test_checkpoint_from_an_older_version_names_the_missing_field(saved_rssm, tmp_path):
    cfg, data, path = saved_rssm
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    del ckpt["experiment"]["train_seed"]
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="train_seed: missing from the checkpoint"):
        load_checkpoint(tmp_path / "old.pt", expect=cfg, data=data, device="cpu")


def test_unknown_model_config_key_is_a_checkpoint_error(saved_rssm, tmp_path):
    _, _, path = saved_rssm
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["model_config"]["gru_layers"] = 2
    torch.save(ckpt, tmp_path / "future.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "future.pt", device="cpu")
    assert "gru_layers" in str(info.value) and "python -m wmhelpers train-rssm" in str(info.value)


def test_checkpoint_records_the_device(saved_rssm):
    _, _, path = saved_rssm
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    assert meta["device_record"]["type"] == "cpu" and meta["device_record"]["threads"] >= 1
    assert meta["device"].startswith("cpu: ")


# ---- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seq_len", [1])
def test_seq_len_below_two_is_refused_by_name(seq_len):
    with pytest.raises(ValueError, match="seq_len=1"):
        ExperimentConfig(seq_len=seq_len)


def _dying_worker(cfg_dict, stream, steps, queue):
    if stream == 1:
        os._exit(7)  # dies without a word, as an OOM kill or an emulator crash would
    time.sleep(30)


def test_dead_collection_worker_is_reported_within_seconds(tmp_path, monkeypatch):
    monkeypatch.setattr(wmdata, "_collect_stream", _dying_worker)
    cfg = tiny_config(tmp_path, env_steps=100, collect_streams=2)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        wmdata.collect(cfg, progress=False)
    assert time.monotonic() - start < 20  # the old code waited 600 s for the queue
    assert "stream 1" in str(info.value) and "exit code 7" in str(info.value)


# ---- the RNG: validation never moves training; the training seed moves only training ----------------
@pytest.fixture(scope="module")
def split():
    data = make_dataset([14, 16, 15, 13], moving_square=True, seed=2)
    return data.split(tiny_config(val_episodes=1))


def test_validation_leaves_every_global_rng_stream_alone(split, monkeypatch):
    _, val = split
    cfg = tiny_config(val_windows=4, seq_len=6)
    model = TransformerWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    windows = validation_windows(val, cfg)
    before = torch.get_rng_state()

    def forbidden(*args, **kwargs):
        raise AssertionError("validation reseeded the global RNG (this also reseeds every CUDA generator)")

    monkeypatch.setattr(torch, "manual_seed", forbidden)
    first = validation_loss(model, windows, seed=0)
    assert torch.equal(torch.get_rng_state(), before)
    assert validation_loss(model, windows, seed=0) == first  # and it is still repeatable


def _train(split, **overrides):
    train, val = split
    cfg = tiny_config(train_steps=12, val_windows=4, seq_len=6, **overrides)
    model = TransformerWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    hist = train_world_model(model, train, val, cfg, progress=False)
    return model, hist


def test_how_often_validation_runs_does_not_change_the_weights(split):
    often, hist_often = _train(split, log_every=1)
    rarely, hist_rarely = _train(split, log_every=1000)
    assert len(hist_often["step"]) > len(hist_rarely["step"])
    for (name, a), b in zip(often.state_dict().items(), rarely.state_dict().values()):
        assert torch.equal(a, b), name


def test_training_seed_moves_the_model_but_not_the_data_seed(split):
    a, hist_a = _train(split, train_seed=0)
    b, hist_b = _train(split, train_seed=1)
    assert any(not torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert hist_a["train_seed"] == 0 and hist_b["train_seed"] == 1
    # the validation windows follow cfg.seed only
    _, val = split
    w0 = validation_windows(val, tiny_config(val_windows=4, seq_len=6, train_seed=0))
    w1 = validation_windows(val, tiny_config(val_windows=4, seq_len=6, train_seed=1))
    assert torch.equal(w0["start"], w1["start"])


# ---- presets and precision ---------------------------------------------------------------------------
def test_gpu_preset_applies_on_cuda_only(monkeypatch):
    monkeypatch.delenv("WM_SMOKE", raising=False)
    monkeypatch.delenv("WM_PRESET", raising=False)
    cpu = ExperimentConfig.from_env()
    assert cpu == ExperimentConfig() and cpu.preset == "cpu"  # the CPU default is unchanged
    monkeypatch.setattr(ExperimentConfig, "resolve_device", lambda self: torch.device("cuda"))
    gpu = ExperimentConfig.from_env()
    assert gpu.preset == "gpu" and gpu.train_steps > cpu.train_steps
    assert gpu.checkpoint_dir != cpu.checkpoint_dir  # never overwrites the shipped CPU checkpoints
    assert gpu.replace(train_steps=cpu.train_steps, checkpoint_dir=cpu.checkpoint_dir) == cpu  # only the budget
    monkeypatch.setenv("WM_PRESET", "cpu")
    assert ExperimentConfig.from_env() == cpu
    monkeypatch.setenv("WM_SMOKE", "1")
    assert ExperimentConfig.from_env() == ExperimentConfig.smoke()  # smoke wins, unchanged


# ---- the loss pairs the prediction made at a_t with z_{t+1} -------------------------------------------
class _ScriptedDynamics(RSSMWorldModel):
    """A world model whose teacher-forced outputs are scripted: the posterior of frame t is a
    distinct categorical P_t, and the prediction made at step t is `predict(t)`."""

    def __init__(self, shift: int, config: dict):
        super().__init__(config)
        self.shift = shift

    def teacher_forced(self, obs, action, sample=True, generator=None):
        B, T = action.shape
        V, K = self.vae.latent_vars, self.vae.latent_classes
        g = torch.Generator().manual_seed(0)
        post = torch.randn(1, T + 2, V, K, generator=g).expand(B, -1, -1, -1) * 3  # P_0 .. P_{T+1}
        nxt = post[:, self.shift: self.shift + T]  # the prediction made at step t: P_{t + shift}
        z = self.vae.sample(post[:, :T], generator)
        return {"post_logits": post[:, :T], "next_logits": nxt, "latent": z,
                "reward": torch.zeros(B, T), "cont_logit": torch.zeros(B, T)}


@pytest.mark.parametrize("shift, zero", [(1, True), (0, False), (2, False)])
def test_only_the_correct_alignment_gives_zero_dynamics_kl(shift, zero):
    cfg = tiny_config(seq_len=6)
    model = _ScriptedDynamics(shift, _ScriptedDynamics.config_from(cfg, NUM_ACTIONS))
    batch = make_dataset([10], seed=1).sample(2, 6, torch.Generator().manual_seed(0))
    _, terms = model.loss(batch)
    # prediction made at a_t must be scored against the posterior of frame t+1: shift 1 is exact
    assert (terms["kl"] < 1e-5) == zero, terms["kl"]
