"""wm.play: the headless PlaySession on the real Boxing emulator with tiny models, and the panel without a browser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

import wmhelpers as wm
from wmhelpers import play
from wmhelpers.data import collect, make_env, resize_frame

CONTEXT = 4
START = 5  # the context window is rows 5..8 of the stand-in validation episode


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """One real Boxing episode, cut after 40 steps, stands in for the validation data (CI has no cache)."""
    cfg = tiny_config(tmp_path_factory.mktemp("play"), env_steps=40, collect_streams=1, context=CONTEXT)
    val = collect(cfg, progress=False)
    models = {"RSSM": wm.RSSMWorldModel.from_config(cfg, num_actions=val.num_actions, device="cpu"),
              "Transformer": wm.TransformerWorldModel.from_config(cfg, num_actions=val.num_actions, device="cpu")}
    return cfg, val, models


@pytest.fixture
def session(setup):
    cfg, val, models = setup
    return play.PlaySession(models, val, cfg, start=START)


def _as_model(frames) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)[None]


def _uint8(frame: torch.Tensor) -> np.ndarray:
    return frame.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_starts_at_the_held_out_window_synced(session, setup):
    cfg, val, _ = setup
    assert session.replay_exact  # Boxing without sticky actions replays exactly from reset
    np.testing.assert_array_equal(np.stack(session.frames), val.arrays["obs"][START : START + CONTEXT])
    assert session.actions == val.arrays["action"][START : START + CONTEXT - 1].tolist()
    assert session.action_names[:3] == ("NOOP", "FIRE", "UP") and session.num_actions == 18
    last = session.last
    assert last["step"] == 0 and last["since_sync"] == 0 and last["action"] is None
    assert last["token_agreement"] == {"RSSM": 1.0, "Transformer": 1.0}


def test_real_side_matches_the_env_stepped_by_hand(session, setup):
    cfg, val, _ = setup
    env = make_env(cfg)
    env.reset()
    for a in val.arrays["action"][: START + CONTEXT - 1]:  # to the last context frame
        env.step(int(a))
    for a in [3, 3, 1, 12, 0, 5]:
        frame, reward, *_ = env.step(a)
        out = session.step(a)
        np.testing.assert_array_equal(out["frames"]["real"], resize_frame(frame, cfg.frame_size))
        assert out["real_reward"] == reward


def test_stepping_advances_all_three_sides_like_one_long_imagination(session):
    """After k steps each model shows the k-th frame of ONE imagination from the synced state with those
    k actions, although the session advanced it one step at a time."""
    actions = [4, 4, 2, 1, 11]
    start_obs, start_actions = _as_model(session.frames), torch.tensor([session.actions])
    outs = [session.step(a) for a in actions]
    assert [o["step"] for o in outs] == [1, 2, 3, 4, 5] and [o["since_sync"] for o in outs] == [1, 2, 3, 4, 5]
    assert len({o["frames"]["real"].tobytes() for o in outs}) > 1  # the real game moved
    for name, side in session.sides.items():
        model = side.model
        with torch.no_grad():
            whole = model.imagine(model.observe(start_obs, start_actions), torch.tensor([actions]))
            frames = model.decode(whole["latent"][0])
        for k, out in enumerate(outs):
            np.testing.assert_array_equal(out["frames"][name], _uint8(frames[k]))
            assert out["predicted_reward"][name] == pytest.approx(float(whole["reward"][0, k]), abs=1e-5)
            assert 0.0 <= out["token_agreement"][name] <= 1.0


def test_resync_restores_the_reconstruction_of_the_real_frame(session):
    for a in [3, 3, 3, 1]:
        session.step(a)
    out = session.resync()
    obs, actions = _as_model(session.frames), torch.tensor([session.actions])
    assert out["since_sync"] == 0 and out["step"] == 4
    for name, side in session.sides.items():
        with torch.no_grad():
            token = side.model.encode(obs, actions)[0, -1]  # the posterior token of the last real frame
            np.testing.assert_array_equal(out["frames"][name], _uint8(side.model.decode(token)))
        assert out["token_agreement"][name] == 1.0


@pytest.mark.parametrize("bad", [18, -1, "x", 2.0, True, None])
def test_an_action_out_of_range_is_a_clear_error(session, bad):
    with pytest.raises(ValueError, match=r"\[0, 18\).*0 NOOP, 1 FIRE"):
        session.step(bad)
    assert session.step_count == 0


def test_actions_by_name_and_game_over(session):
    assert session.step("FIRE")["action"] == 1 and session.last["action_name"] == "FIRE"
    assert session.step(np.int64(2))["action_name"] == "UP"
    session.done = True  # as if the real game had ended
    with pytest.raises(RuntimeError, match="restart"):
        session.step(0)
    assert session.restart()["step"] == 0 and not session.done


def test_a_start_outside_the_data_is_refused(setup):
    cfg, val, models = setup
    with pytest.raises(ValueError, match="start"):
        play.PlaySession(models, val, cfg, start=len(val) - CONTEXT + 1)


def test_render_shows_the_three_frames_upscaled(session):
    session.step(3)
    image = session.render()
    side = play.SCALE * 64
    assert image.size == (2 * play.MARGIN + 3 * side + 2 * play.GAP, play.MARGIN + play.TITLE_H + side + play.READOUT_H)
    pixels = np.asarray(image)
    top = play.MARGIN + play.TITLE_H
    for i, name in enumerate(["real", "RSSM", "Transformer"]):
        left = play.MARGIN + i * (side + play.GAP)
        big = np.repeat(np.repeat(session.last["frames"][name], play.SCALE, 0), play.SCALE, 1)
        np.testing.assert_array_equal(pixels[top : top + side, left : left + side], big)
    assert session.render_png().startswith(b"\x89PNG")


def _buttons(widget) -> dict:
    import ipywidgets as widgets

    if isinstance(widget, widgets.Button):
        return {widget.description: widget}
    found = {}
    for child in getattr(widget, "children", ()):
        found.update(_buttons(child))
    return found


def test_panel_runs_headless_and_returns_the_session(setup, capsys):
    pytest.importorskip("ipywidgets")
    cfg, val, models = setup
    session = play.panel(models, val, cfg, start=START)
    assert isinstance(session, play.PlaySession)
    assert "open the notebook in Jupyter or Colab to play" in capsys.readouterr().out
    data = play._PanelOutput(session.widget, session.render_png())._repr_mimebundle_()
    assert {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"} <= set(data)
    assert "VBox" not in data["text/plain"]  # a static view shows the still image, not the widget's repr


def test_panel_buttons_step_and_show_errors_in_one_line(session, monkeypatch):
    pytest.importorskip("ipywidgets")
    ui = play.controls(session)
    buttons = _buttons(ui)
    assert {"NOOP", "FIRE", "DOWNLEFTFIRE", "re-sync", "restart"} <= set(buttons)
    buttons["UP"].click()
    assert session.step_count == 1 and session.last["action_name"] == "UP"
    _buttons(ui)["step again: UP"].click()
    assert session.step_count == 2 and session.last["since_sync"] == 2
    buttons["re-sync"].click()
    assert session.last["since_sync"] == 0

    def broken(action):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(session, "step", broken)
    buttons["FIRE"].click()  # must not raise
    status = ui.children[1].value
    assert "ValueError: boom" in status and "second line" not in status and "Traceback" not in status


def test_panel_never_raises_where_colab_lacks_its_widget_manager(monkeypatch, capsys, setup):
    """An old or stubbed google.colab without `output`: one line, the still image, no traceback."""
    import sys
    import types

    pytest.importorskip("ipywidgets")
    cfg, val, models = setup
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(play, "_in_colab", lambda: True)
    session = play.panel(models, val, cfg, start=START)
    assert isinstance(session, play.PlaySession)
    assert "custom widget manager is not available" in capsys.readouterr().out


def test_drift_figure_draws_the_agreement_of_one_imagination_per_model(session):
    """The static panel's curve is the token agreement of `imagine` with the real next actions, computed
    here directly; both models are drawn, and the frames at the shown steps are real and imagined."""
    d = play.drift(session, steps=20)
    C, end = CONTEXT, START + CONTEXT - 1
    arrays = session.val.arrays
    obs = _as_model(list(arrays["obs"][START : end + 21]))
    actions = torch.as_tensor(arrays["action"][START : end + 20])[None]
    assert d["steps"] == list(range(1, 21))
    fig = play.drift_figure(d)
    lines = {line.get_label(): line.get_ydata() for line in fig.axes[0].get_lines()}
    assert set(lines) == {"RSSM", "Transformer"}
    for name, side in session.sides.items():
        with torch.no_grad():
            state = side.model.observe(obs[:, :C], actions[:, : C - 1])
            z = side.model.imagine(state, actions[:, C - 1 :])["latent"][0]
            want = wm.rollouts.token_agreement(z, side.model.encode(obs, actions)[0, C:], 32)
        np.testing.assert_allclose(lines[name], want.numpy())
        np.testing.assert_array_equal(d["frames"][name][4], _uint8(side.model.decode(z[4])))
    np.testing.assert_array_equal(d["frames"]["real"][0], arrays["obs"][end + 1])
    assert fig.get_size_inches()[0] <= 10 and len(fig.axes) == 1 + 3 * 4


def test_static_panel_shows_the_drift_figure(setup):
    pytest.importorskip("ipywidgets")
    cfg, val, models = setup
    session = play.panel(models, val, cfg, start=START)
    png = play._png(play.drift_figure(session.drift))
    data = play._PanelOutput(session.widget, png)._repr_mimebundle_()
    import base64
    assert base64.b64decode(data["image/png"]) == png and png.startswith(b"\x89PNG")
