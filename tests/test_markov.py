"""Section 6, the Markov check (wmhelpers.evaluation.markov) and its figure."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_config

from wmhelpers.evaluation import markov, memory_verdict
from wmhelpers.models.rssm import RSSMWorldModel
from wmhelpers.models.transformer import TransformerWorldModel
from wmhelpers.notebook_tools import plots


def test_the_markov_check_ignores_frames_older_than_k(small_data):
    cfg = tiny_config(context=4, horizon=3)
    models = {"RSSM": RSSMWorldModel.from_config(cfg, small_data.num_actions),
              "Transformer": TransformerWorldModel.from_config(cfg, small_data.num_actions)}
    win = small_data.fixed_windows(3, 7, seed=0)
    win = {"obs": win["obs"], "action": win["action"]}
    base = markov.markov_check(models, win, cfg, ks=(1, 2, 4), horizons=(1, 3))
    older = {"obs": win["obs"].clone(), "action": win["action"].clone()}
    older["obs"][:, :2] = 1 - older["obs"][:, :2]  # change the two oldest context frames ...
    older["action"][:, :1] = (older["action"][:, :1] + 1) % small_data.num_actions  # ... and the action between
    moved = markov.markov_check(models, older, cfg, ks=(1, 2, 4), horizons=(1, 3))
    for name in models:
        assert base["psnr"][name][:2] == moved["psnr"][name][:2]  # K = 1, 2 never see them
        assert base["psnr"][name][2] != moved["psnr"][name][2]  # K = 4 does
        d = base["delta"][name]
        assert d["mean"][-1] == 0 and d["n"] == [3, 3, 3]  # relative to the longest K, per window
        rows = np.asarray(base["psnr"][name]).mean(1)
        assert d["mean"] == pytest.approx((rows - rows[-1]).tolist())
    with pytest.raises(ValueError, match="context"):
        markov.markov_check(models, win, cfg, ks=(8,))


def test_markov_facts_and_figure_read_the_per_window_change():
    check = {"ks": [1, 2, 4, 8], "horizons": [1, 5], "n_windows": 30,
             "delta": {"RSSM": {"mean": [-2.0, -0.1, 0.05, 0.0], "ci": [0.5, 0.2, 0.1, 0.0], "n": [30] * 4},
                       "Transformer": {"mean": [-1.0, -0.3, -0.2, 0.0], "ci": [0.2, 0.1, 0.1, 0.0], "n": [30] * 4}}}
    facts = memory_verdict.markov_facts(check)
    assert facts["ks"] == [1, 2, 4] and facts["longest"] == 8
    assert facts["models"]["RSSM"]["direction"] == [1, 0, 0]  # only K = 1 measurably loses
    assert facts["models"]["Transformer"]["direction"] == [1, 1, 1]
    assert facts["models"]["RSSM"]["upper"] == pytest.approx([2.5, 0.3, 0.05])
    fig = plots.markov_gain(check)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and list(ax.lines[0].get_ydata()) == [-2.0, -0.1, 0.05, 0.0]
    assert len(ax.collections) == 2 and fig.get_size_inches()[0] <= 10  # one band per model
