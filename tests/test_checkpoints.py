"""Checkpoints: exact round trip, weights_only loading, mismatch errors, damaged files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import NUM_ACTIONS, make_dataset, tiny_config

import wmhelpers.runs.checkpoints as ckpts
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.runs.checkpoints import CheckpointError, load_checkpoint, load_or_train, read_checkpoint, save_checkpoint
from wmhelpers.training.loop import train_world_model

KINDS = {"transformer": TransformerWorldModel, "rssm": RSSMWorldModel}

HISTORY = {
    "kind": "x", "steps": 3, "step": [1, 2, 3], "wall_seconds": [0.5, 1.0, 1.5], "train_seconds": 1.5,
    "train": {"total": [3.0, 2.0, 1.0]}, "val": {"total": [2.5, float("inf")]}, "note": None,
}


@pytest.fixture(scope="module")
def data():
    return make_dataset([6, 7, 8], seed=4)


def _model(kind, cfg):
    model = KINDS[kind].from_config(cfg, NUM_ACTIONS, device="cpu")
    # move every tensor away from its seeded initial value, so a load that silently re-initialises fails
    with torch.no_grad():
        g = torch.Generator().manual_seed(123)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    return model


@pytest.fixture(params=sorted(KINDS))
def saved(request, tmp_path, data):
    kind = request.param
    cfg = tiny_config(tmp_path)
    model = _model(kind, cfg)
    path = save_checkpoint(tmp_path / "checkpoints" / f"{kind}.pt", model, cfg, HISTORY, data)
    return kind, cfg, model, path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_saved_file_loads_with_weights_only(tmp_path, data, kind):
    cfg = tiny_config(tmp_path)
    model = _model(kind, cfg)
    path = save_checkpoint(tmp_path / f"{kind}.pt", model, cfg, HISTORY, data)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert type(ckpt["meta"]["torch_version"]) is str
    loaded, history = load_checkpoint(path, expect=cfg, data=data, device="cpu")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert history == HISTORY


def test_round_trip_is_exact(saved, data):
    kind, cfg, model, path = saved
    loaded, history = load_checkpoint(path, expect=cfg, data=data, device="cpu")
    assert type(loaded) is KINDS[kind]
    assert not loaded.training
    assert loaded.model_config() == model.model_config()
    want, got = model.state_dict(), loaded.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    assert history == HISTORY


def test_file_is_a_plain_weights_only_dict(saved, data):
    kind, cfg, model, path = saved
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert {"format_version", "kind", "model_config", "experiment", "data_fingerprint", "history", "meta",
            "state_dict"} <= set(ckpt)
    assert ckpt["kind"] == kind
    assert ckpt["format_version"] == ckpts.FORMAT_VERSION
    assert ckpt["data_fingerprint"] == data.fingerprint()
    assert ckpt["experiment"] == cfg.to_dict()
    assert all(t.device.type == "cpu" for t in ckpt["state_dict"].values())
    assert {"torch_version", "device", "wall_seconds", "created"} <= set(ckpt["meta"])
    assert ckpt["meta"]["wall_seconds"] == HISTORY["train_seconds"]


def test_no_temporary_files_left(saved):
    kind, cfg, model, path = saved
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_failed_write_keeps_the_old_checkpoint(saved, monkeypatch):
    kind, cfg, model, path = saved
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpts.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, cfg, {"other": 1})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# --------------------------------------------------------------------------------------------
# mismatches
# --------------------------------------------------------------------------------------------
def _error(path, **kwargs) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, device="cpu", **kwargs)
    return str(info.value)


def _rewrite(path, **changes):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt.update(changes)
    torch.save(ckpt, path)


def test_matching_checkpoint_loads(saved, data):
    kind, cfg, model, path = saved
    load_checkpoint(path, expect=cfg, data=data, device="cpu")
    # settings outside the comparison (machine, paths) may differ
    load_checkpoint(path, expect=cfg.replace(device="auto", data_dir="elsewhere", amp="auto"), data=data,
                    device="cpu")


def test_env_mismatch_named(saved, data):
    kind, cfg, model, path = saved
    msg = _error(path, expect=cfg.replace(env_id="ALE/Pong-v5"), data=data)
    assert "env_id" in msg and "'ALE/Boxing-v5'" in msg and "'ALE/Pong-v5'" in msg
    assert str(path) in msg
    assert KINDS[kind].rebuild_command in msg
    assert "data_fingerprint" not in msg and "num_actions" not in msg  # only what differs


def test_num_actions_mismatch_named(saved, data):
    kind, cfg, model, path = saved
    other = make_dataset([6, 7, 8], num_actions=NUM_ACTIONS + 3, seed=4)
    msg = _error(path, expect=cfg, data=other)
    assert f"num_actions: checkpoint {NUM_ACTIONS} != expected {NUM_ACTIONS + 3}" in msg
    assert KINDS[kind].rebuild_command in msg


def test_latent_size_mismatch_named(saved, data):
    kind, cfg, model, path = saved
    msg = _error(path, expect=cfg.replace(latent_vars=16), data=data)
    assert "latent_vars" in msg and "32" in msg and "16" in msg
    assert "latent_classes" not in msg
    assert KINDS[kind].rebuild_command in msg


def test_data_fingerprint_mismatch_named(saved, data):
    kind, cfg, model, path = saved
    arrays = {k: v.copy() for k, v in data.arrays.items()}
    arrays["obs"][3, 10, 10, 1] ^= 1
    other = type(data)(arrays, dict(data.meta))
    msg = _error(path, expect=cfg, data=other)
    assert "data_fingerprint" in msg
    assert data.fingerprint()[:12] in msg and other.fingerprint()[:12] in msg
    assert "num_actions" not in msg
    assert KINDS[kind].rebuild_command in msg


def test_format_version_mismatch_named(saved):
    kind, cfg, model, path = saved
    _rewrite(path, format_version=99)
    msg = _error(path)  # checked even without expect / data
    assert "format_version" in msg and "99" in msg and str(ckpts.FORMAT_VERSION) in msg
    assert KINDS[kind].rebuild_command in msg


def test_all_mismatches_in_one_error(saved, data):
    kind, cfg, model, path = saved
    _rewrite(path, format_version=ckpts.FORMAT_VERSION + 1)
    other = make_dataset([5, 5], num_actions=NUM_ACTIONS + 1)
    msg = _error(path, expect=cfg.replace(env_id="ALE/Pong-v5", latent_vars=16, seq_len=4), data=other)
    for key in ("format_version", "env_id", "latent_vars", "seq_len", "num_actions", "data_fingerprint"):
        assert key in msg, key
    assert "Rebuild it with: " + KINDS[kind].rebuild_command in msg


def test_smoke_hint_in_rebuild_command(saved, data):
    kind, cfg, model, path = saved
    msg = _error(path, expect=cfg.replace(smoke_mode=True, seed=1), data=data)
    assert "seed" in msg and "WM_SMOKE=1" in msg


def test_rssm_rebuild_command_is_a_real_cli_command(capsys):
    from wmhelpers.__main__ import main

    prefix = "python -m wmhelpers "
    assert RSSMWorldModel.rebuild_command.startswith(prefix)
    argv = RSSMWorldModel.rebuild_command[len(prefix):].split()
    with pytest.raises(SystemExit) as info:
        main(argv + ["--help"])  # parses the subcommand without training anything
    assert info.value.code == 0
    assert "--smoke" in capsys.readouterr().out


def test_weights_that_do_not_fit_model_config(saved):
    kind, cfg, model, path = saved
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    _rewrite(path, model_config=dict(ckpt["model_config"], hidden=48))
    msg = _error(path)
    assert str(path) in msg and kind in msg


def test_unknown_kind(saved):
    kind, cfg, model, path = saved
    _rewrite(path, kind="lstm")
    msg = _error(path)
    assert "lstm" in msg and str(path) in msg


# --------------------------------------------------------------------------------------------
# damaged or foreign files
# --------------------------------------------------------------------------------------------
def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(bytes(range(256)) * 20)
    msg = _error(path)
    assert "checkpoint" in msg and str(path) in msg


def test_truncated_checkpoint(saved):
    kind, cfg, model, path = saved
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    msg = _error(path)
    assert "checkpoint" in msg and str(path) in msg


def test_missing_file(tmp_path):
    msg = _error(tmp_path / "nope.pt")
    assert "checkpoint" in msg.lower() and "nope.pt" in msg


def test_not_a_checkpoint_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    msg = _error(path)
    assert "checkpoint" in msg and str(path) in msg
    path2 = tmp_path / "dict.pt"
    torch.save({"state_dict": {}}, path2)
    assert "format_version" in _error(path2)


CALLED = []


def _record_call():
    CALLED.append(True)
    return "ran"


class Sneaky:
    def __reduce__(self):
        return (_record_call, ())


def test_pickled_code_is_refused_not_run(tmp_path):
    path = tmp_path / "sneaky.pt"
    torch.save({"format_version": 1, "kind": "rssm", "model_config": {}, "experiment": {},
                "state_dict": {}, "history": Sneaky()}, path)
    CALLED.clear()
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert not CALLED
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# with a real training history
# --------------------------------------------------------------------------------------------
def _two_step_setup(tmp_path):
    data = make_dataset([8, 9, 7, 8], seed=5)
    cfg = tiny_config(tmp_path, train_steps=2, log_every=1, val_windows=2, seq_len=6, batch_size=2)
    train, val = data.split(cfg)
    return cfg, data, train, val


def test_real_history_round_trips(tmp_path):
    cfg, data, train, val = _two_step_setup(tmp_path)
    model = TransformerWorldModel.from_config(cfg, NUM_ACTIONS, device="cpu")
    history = train_world_model(model, train, val, cfg, progress=False)
    path = save_checkpoint(tmp_path / "tf.pt", model, cfg, history, data)
    loaded, got = load_checkpoint(path, expect=cfg, data=data, device="cpu")
    assert got == history
    assert torch.load(path, weights_only=True)["meta"]["wall_seconds"] == history["train_seconds"]


def test_load_or_train_reuses_its_checkpoint(tmp_path, monkeypatch, capsys):
    import wmhelpers.runs.checkpoints as wmtrain

    cfg, data, train, val = _two_step_setup(tmp_path)
    calls = []
    real = wmtrain.train_world_model

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(wmtrain, "train_world_model", counting)
    path = tmp_path / "checkpoints" / "tf.pt"
    first, h1 = load_or_train(TransformerWorldModel, path, cfg, data, train, val, progress=False)
    second, h2 = load_or_train(TransformerWorldModel, path, cfg, data, train, val, progress=False)
    assert len(calls) == 1, capsys.readouterr().out
    assert h2 == h1
    assert all(torch.equal(second.state_dict()[k], v) for k, v in first.state_dict().items())
