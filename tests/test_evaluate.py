"""What the evaluation means, pinned by models and numbers whose scores are known in advance:
non-overlapping windows, an oracle that scores the reconstruction ceiling, a model that holds
its last latent, a windows check that can fail, the PSNR cap, and the statistics by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_arrays, make_dataset, tiny_config

import wmhelpers as wm
from wmhelpers.data import EpisodeDataset
from wmhelpers.evaluation import rollouts as ev
from wmhelpers.evaluation import stats, tables
from wmhelpers.evaluation.psnr import PSNR_CAP_DB, psnr

EVAL = dict(context=4, horizon=3, eval_windows=6, eval_samples=2, val_episodes=2)
T_DOF1, T_DOF2, T_DOF3 = 12.706205, 4.302653, 3.182446  # t_{0.975} with 1, 2, 3 degrees of freedom (tables)


@pytest.fixture
def cfg(tmp_path):
    return tiny_config(tmp_path, **EVAL)


@pytest.fixture
def data():
    """Episodes of 20, 24, 18 and 22 steps; the last two (rows 0-17 and 18-39 of val) are held out."""
    return make_dataset([20, 24, 18, 22], moving_square=True, seed=5)


def _val(data, cfg):
    return data.split(cfg)[1]


# --------------------------------------------------------------------------------------------
# The windows
# --------------------------------------------------------------------------------------------
def test_tile_starts_by_hand():
    data = make_dataset([5, 3, 7])  # rows 0-4, 5-7, 8-14
    assert data.tile_starts(3).tolist() == [0, 5, 8, 11]  # the remainders (rows 3-4, 14) are left out
    assert data.tile_starts(8).tolist() == []


def test_windows_tile_the_validation_episodes_without_overlap(data, cfg):
    val = _val(data, cfg)
    w = ev.evaluation_windows(val, cfg)
    # C + H = 7: episode of 18 steps -> tiles at 0, 7; episode of 22 steps (rows 18-39) -> 18, 25, 32
    assert w["start"].tolist() == [0, 7, 18, 25, 32]
    assert w["n_tiles"] == 5 and len(w["obs"]) == 5  # fewer tiles than eval_windows = 6: all are used
    rows = (w["start"][:, None] + torch.arange(7)).flatten()
    assert len(set(rows.tolist())) == len(rows)  # no frame in two windows
    episode = torch.from_numpy(val.arrays["episode"])
    assert all(len(set(episode[s : s + 7].tolist())) == 1 for s in w["start"].tolist())  # within one episode
    assert w["episode"].tolist() == [2, 2, 3, 3, 3]
    # the frames are the stored ones (make_arrays writes the row number into pixel (0, 0))
    first_row = int(val.arrays["obs"][0, 0, 0, 0])
    marker = (w["obs"][:, :, 0, 0, 0] * 255).round().long() - first_row
    assert torch.equal(marker, w["start"][:, None] + torch.arange(7))


def test_more_tiles_than_eval_windows_are_evenly_spread(data, cfg):
    w = ev.evaluation_windows(_val(data, cfg), cfg.replace(eval_windows=3))
    assert w["start"].tolist() == [0, 18, 32]  # tiles 0, 2 and 4 of the five
    assert w["n_tiles"] == 5


def test_windows_are_fixed_by_the_data_alone(data, cfg):
    """The same windows on every call and for every training seed."""
    val = _val(data, cfg)
    a = ev.evaluation_windows(val, cfg)
    b = ev.evaluation_windows(val, cfg.replace(train_seed=cfg.train_seed + 7))
    assert torch.equal(a["start"], b["start"]) and torch.equal(a["obs"], b["obs"])
    assert torch.equal(a["action"], b["action"])


def test_too_short_validation_episodes_are_named(data, cfg):
    with pytest.raises(ValueError, match="No validation episode has 30 steps"):
        ev.evaluation_windows(_val(data, cfg), cfg.replace(context=20, horizon=10))


# --------------------------------------------------------------------------------------------
# Models whose scores are known: an oracle and a latent-hold
# --------------------------------------------------------------------------------------------
class OracleModel(wm.TransformerWorldModel):
    """Imagines what really happened: the posterior-mode latents of the true future frames.

    It finds them through the row number that make_arrays writes into pixel (0, 0) of every
    frame, and rebuilds the whole window exactly as the evaluator's windows are built."""

    def attach(self, val):
        self.val = val
        self.first_row = int(val.arrays["obs"][0, 0, 0, 0]) + 256 * int(val.arrays["obs"][0, 0, 0, 1])
        return self

    def observe(self, obs, actions):
        return dict(super().observe(obs, actions), context=obs)

    def imagine(self, state, actions, sample=False, generator=None):
        context = state["context"]
        C, H = context.shape[1], actions.shape[1]
        marker = (context[:, -1, :2, 0, 0] * 255).round().long().cpu()
        starts = marker[:, 0] + 256 * marker[:, 1] - self.first_row - (C - 1)
        window = self.val.windows(starts.numpy(), C + H)["obs"].to(context.device)
        assert torch.equal(window[:, :C], context)  # it really found this window
        latent = self.encode(window)[:, C:]
        zeros = torch.zeros(latent.shape[:2], device=latent.device)
        return {"latent": latent, "reward": zeros, "cont": zeros + 1}


class HoldModel(wm.TransformerWorldModel):
    """No dynamics at all: imagines the last context latent, repeated."""

    def imagine(self, state, actions, sample=False, generator=None):
        latent = state["latent"][:, None].expand(-1, actions.shape[1], -1)
        zeros = torch.zeros(latent.shape[:2], device=latent.device)
        return {"latent": latent, "reward": zeros, "cont": zeros + 1}


def test_an_oracle_scores_exactly_the_reconstruction_ceiling(data, cfg):
    val = _val(data, cfg)
    oracle = OracleModel.from_config(cfg, data.num_actions).attach(val)
    res = ev.evaluate_rollouts({"oracle": oracle}, val, cfg, progress=False)
    for curve in ("mode", "sampled"):  # the oracle ignores sampling: the mean of equal frames is that frame
        for metric in ("whole", "changed"):
            np.testing.assert_array_equal(res["raw"][("oracle", curve)][metric],
                                          res["raw"][("oracle", "recon_ceiling")][metric])
    # and the ceiling is not trivially equal to everything: an untrained model's latent-hold differs
    assert not np.array_equal(res["raw"][("oracle", "latent_hold")]["whole"],
                              res["raw"][("oracle", "recon_ceiling")]["whole"])


def test_a_hold_model_scores_exactly_latent_hold(data, cfg):
    val = _val(data, cfg)
    res = ev.evaluate_rollouts({"hold": HoldModel.from_config(cfg, data.num_actions)}, val, cfg, progress=False)
    for curve in ("mode", "sampled"):
        for metric in ("whole", "changed"):
            np.testing.assert_array_equal(res["raw"][("hold", curve)][metric],
                                          res["raw"][("hold", "latent_hold")][metric])
    assert res["models"]["hold"]["mode"] == res["models"]["hold"]["latent_hold"]


def test_real_models_get_every_curve_and_one_step_equals_teacher_forcing(data, cfg):
    val = _val(data, cfg)
    models = {"RSSM": wm.RSSMWorldModel.from_config(cfg, data.num_actions),
              "Transformer": wm.TransformerWorldModel.from_config(cfg, data.num_actions)}
    res = ev.evaluate_rollouts(models, val, cfg, progress=False)
    assert res["n_windows"] == 5 and res["window_starts"] == [0, 7, 18, 25, 32]
    for name in models:
        for curve in ("mode", "sampled", "latent_hold", "recon_ceiling", "teacher_forced"):
            for metric in ("whole", "changed"):
                s = res["models"][name][curve][metric]
                assert {"mean", "ci", "n", "psnr_of_mean_mse", "capped"} <= set(s)
                assert all(len(s[k]) == cfg.horizon for k in ("mean", "ci", "n", "psnr_of_mean_mse", "capped"))
                assert res["raw"][(name, curve)][metric].shape == (5, cfg.horizon)
        # one imagined step from real context IS the teacher-forced one-step prediction
        np.testing.assert_allclose(res["raw"][(name, "mode")]["whole"][:, 0],
                                   res["raw"][(name, "teacher_forced")]["whole"][:, 0], rtol=1e-4)


# --------------------------------------------------------------------------------------------
# The windows are named by their digest
# --------------------------------------------------------------------------------------------
def _two_models(cfg, data):
    return {"RSSM": wm.RSSMWorldModel.from_config(cfg, data.num_actions),
            "Transformer": wm.TransformerWorldModel.from_config(cfg, data.num_actions)}


def test_windows_check_passes_and_names_the_windows(data, cfg):
    val = _val(data, cfg)
    res = ev.evaluate_rollouts(_two_models(cfg, data), val, cfg, progress=False)
    assert res["windows_sha256"] == ev.windows_digest(ev.evaluation_windows(val, cfg))
    assert res["windows_sha256"] != ev.windows_digest(ev.evaluation_windows(val, cfg.replace(eval_windows=3)))


# --------------------------------------------------------------------------------------------
# Baselines by hand, and the PSNR cap
# --------------------------------------------------------------------------------------------
def _ramp_dataset() -> EpisodeDataset:
    """Flat frames whose value rises by 10 levels per step within each episode (0, 10, 20, ...)."""
    arrays = make_arrays([20, 24, 18, 22])
    step = np.concatenate([np.arange(n) for n in (20, 24, 18, 22)])
    arrays["obs"][:] = (10 * step).astype(np.uint8)[:, None, None, None]
    return EpisodeDataset(arrays, {"num_actions": 6})


def test_copy_last_and_context_mean_by_hand(cfg):
    """Ramp frames: at horizon h, copy-last is off by 10h levels everywhere, PSNR = 20 log10(255 / 10h):
    28.13, 22.11, 18.59 dB. The mean of the 4 context frames is off by 10(1.5 + h) levels: 20.17,
    17.25, 15.07 dB. Every pixel changes by 10 levels > 8, so changed-pixel PSNR is the same."""
    res = ev.evaluate_rollouts({}, _ramp_dataset().split(cfg)[1], cfg, progress=False)
    copy_last, context_mean = res["baselines"]["copy_last"], res["baselines"]["context_mean"]
    for metric in ("whole", "changed"):
        np.testing.assert_allclose(copy_last[metric]["mean"], [28.1308, 22.1102, 18.5884], atol=1e-3)
        np.testing.assert_allclose(context_mean[metric]["mean"], [20.1720, 17.2494, 15.0666], atol=1e-3)
        np.testing.assert_allclose(copy_last[metric]["ci"], 0, atol=1e-3)  # every window scores the same
        assert copy_last[metric]["capped"] == [0, 0, 0]
    assert res["changed_fraction"] == pytest.approx(1.0)


def test_capped_windows_are_counted(data, cfg):
    """Make the first held-out episode (tiles at rows 0 and 7) static: copy-last is then off only in
    the row marker at pixel (0, 0), a few levels in one value, finer than 8-bit quantization, so
    those two windows are capped at every horizon; nothing changed there, so changed pixels say NaN."""
    arrays = make_arrays([20, 24, 18, 22], moving_square=True, seed=5)
    static = slice(44, 62)  # the episode of 18 steps
    marker = arrays["obs"][static, 0, 0, :2].copy()
    arrays["obs"][static] = arrays["obs"][44]
    arrays["obs"][static, 0, 0, :2] = marker
    res = ev.evaluate_rollouts({}, EpisodeDataset(arrays, {"num_actions": 6}).split(cfg)[1], cfg, progress=False)
    copy_last = res["baselines"]["copy_last"]
    assert copy_last["whole"]["capped"] == [2, 2, 2]
    np.testing.assert_allclose(res["raw"][("baselines", "copy_last")]["whole"][:2], PSNR_CAP_DB, atol=1e-4)
    assert copy_last["changed"]["n"] == [3, 3, 3] and copy_last["changed"]["capped"] == [0, 0, 0]
    assert res["baselines"]["context_mean"]["whole"]["capped"] == [2, 2, 2]
    assert ("copy-last", "whole", 1, 2) in tables.capped_counts(res)
    assert "copy-last whole h=1: 2" in tables.psnr_table(res, horizons=(1, 3)).caption


def test_an_identical_frame_moves_a_mean_by_less_than_its_ci():
    """100 windows with PSNR spread like copy-last's at h=1 (29 +- 2.5 dB); then one prediction
    becomes identical to its frame. The capped mean moves by less than the CI of the mean it had."""
    target = torch.full((100, 3, 16, 16), 0.5)
    planned = 29 + 2.5 * torch.linspace(-1.7, 1.7, 100)  # dB
    offset = 10 ** (-planned / 20)  # a constant offset e gives PSNR -20 log10(e)
    pred = target + offset[:, None, None, None]
    before_scores = psnr(pred, target).numpy()[:, None]
    np.testing.assert_allclose(before_scores[:, 0], planned.numpy(), atol=1e-3)
    before = stats.summarize(before_scores)
    pred[50] = target[50]
    after_scores = psnr(pred, target).numpy()[:, None]
    after = stats.summarize(after_scores)
    shift = after["mean"][0] - before["mean"][0]
    assert 0 < shift < before["ci"][0]  # (58.9 - 29) / 100 = 0.30 dB < 0.50 dB
    # the construction has teeth: the old 100 dB cap would have moved it by (100 - 29) / 100 = 0.71 dB
    assert (100 - before_scores[50, 0]) / 100 > before["ci"][0]
    # the PSNR of the mean MSE barely notices, and the window is counted as capped
    mse = ((pred - target) ** 2).mean(dim=(1, 2, 3)).numpy()[:, None]
    s = stats.summarize_psnr(after_scores, mse)
    assert s["capped"] == [1]
    assert abs(s["psnr_of_mean_mse"][0] - 10 * np.log10(1 / np.mean(offset.numpy() ** 2))) < 0.1


# --------------------------------------------------------------------------------------------
# Statistics by hand
# --------------------------------------------------------------------------------------------
def test_summarize_by_hand():
    scores = np.array([[1.0, np.nan, 7.0],
                       [2.0, 4.0, np.nan],
                       [3.0, 6.0, np.nan],
                       [6.0, np.nan, np.nan]])
    s = stats.summarize(scores)
    # column 0: mean 3, s = sqrt((4 + 1 + 0 + 9) / 3) = 2.1602, ci = t(3 dof) * s / sqrt(4) = 3.4374
    # column 1: mean 5, s = sqrt(2), ci = t(1 dof) * sqrt(2) / sqrt(2) = 12.7062
    # column 2: one window, no interval
    assert s["n"] == [4, 2, 1]
    assert s["mean"] == pytest.approx([3.0, 5.0, 7.0])
    assert s["ci"][0] == pytest.approx(T_DOF3 * 2.160247 / 2, abs=1e-4)
    assert s["ci"][0] == pytest.approx(3.4374, abs=1e-4)
    assert s["ci"][1] == pytest.approx(T_DOF1, abs=1e-4)
    assert np.isnan(s["ci"][2])


def test_summarize_uses_t_not_1_96():
    s = stats.summarize(np.array([[1.0], [2.0], [3.0]]))  # mean 2, s = 1, n = 3
    assert s["ci"][0] == pytest.approx(T_DOF2 / np.sqrt(3), abs=1e-4)  # 2.4841, not 1.96 / sqrt(3) = 1.1316
    alternating = (np.arange(500) % 2).astype(float)[:, None]  # mean 0.5, s = sqrt(125 / 499) = 0.50050
    assert stats.summarize(alternating)["ci"][0] == pytest.approx(1.96472 * 0.50050 / np.sqrt(500), abs=1e-5)


def _hand_results() -> dict:
    """Three windows, two horizons; every paired difference below is worked out in the test."""
    R = {"whole": [[20, 18], [22, 19], [24, 23]], "changed": [[10, 9], [10, 9], [10, 9]]}
    T = {"whole": [[21, 16], [24, 16], [27, 16]], "changed": [[11, 10], [12, 10], [13, 10]]}
    raw = {
        ("RSSM", "mode"): R,
        ("Transformer", "mode"): T,
        ("RSSM", "latent_hold"): {"whole": np.subtract(R["whole"], 1),
                                  "changed": np.subtract(R["changed"], [[0.5, 1], [1.5, 1], [2.5, 1]])},
        ("Transformer", "latent_hold"): {"whole": np.subtract(T["whole"], 2),
                                         "changed": np.subtract(T["changed"], [[-1, 0], [0, 0], [1, 0]])},
        ("baselines", "context_mean"): {"whole": [[19, 17], [20, 17], [21, 17]], "changed": [[9, 8]] * 3},
        ("baselines", "copy_last"): {"whole": [[25, 15]] * 3, "changed": [[8, 8]] * 3},
    }
    raw = {k: {m: np.asarray(v, dtype=float) for m, v in s.items()} for k, s in raw.items()}
    models = {"RSSM": {"mode": {"whole": {"mean": [22.0, 20.0]}}, "teacher_forced": {"whole": {"mean": [23.0, 25.0]}}},
              "Transformer": {"mode": {"whole": {"mean": [24.0, 16.0]}},
                              "teacher_forced": {"whole": {"mean": [26.0, 18.5]}}}}
    return {"horizons": [1, 2], "raw": raw, "models": models, "baselines": {}}


def test_paired_margin_by_hand():
    m = wm.paired_margin(_hand_results(), ("Transformer", "mode"), ("RSSM", "mode"), "whole")
    assert m["mean"] == pytest.approx([2.0, -4.0]) and m["n"] == [3, 3]
    assert m["ci"] == pytest.approx([T_DOF2 / np.sqrt(3), T_DOF2 * np.sqrt(7 / 3)], abs=1e-4)


# --------------------------------------------------------------------------------------------
# The results file
# --------------------------------------------------------------------------------------------
def test_results_file_holds_the_method_the_cap_and_the_counts(data, cfg, tmp_path):
    val = _val(data, cfg)
    res = ev.evaluate_rollouts({"hold": HoldModel.from_config(cfg, data.num_actions)}, val, cfg, progress=False)
    hist = {"hold": {"steps": 0, "ms_per_step": 1.0, "device": "cpu"}}
    path = wm.save_results(tmp_path / "r.json", res, hist, cfg, data, device="cpu")
    doc = json.loads(path.read_text())
    assert doc["results_version"] == 3 and wm.load_results(path)["results_version"] == 3
    e = doc["evaluation"]
    assert e["n_windows"] == 5 and e["n_tiles"] == 5 and e["window_episodes"] == [2, 2, 3, 3, 3]
    assert e["psnr_cap_db"] == pytest.approx(58.92, abs=0.01) and e["ci_level"] == 0.95
    assert "non-overlapping" in e["window_method"]
    s = doc["psnr"]["models"]["hold"]["mode"]["whole"]
    assert len(s["psnr_of_mean_mse"]) == len(s["capped"]) == cfg.horizon
    assert "raw" not in doc and "raw" not in doc["psnr"]
