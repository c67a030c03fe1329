"""Reward heads judged on events: AUPRC against a hand computation, and the event metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wmhelpers.evaluation.reward import average_precision, reward_event_metrics


def test_average_precision_by_hand():
    # ranked: 0.9 (event), 0.8 (no), 0.7 (event), 0.1 (no): precision at the two events 1 and 2/3
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.1, 0.2, 0.3], [0, 0, 1]) == pytest.approx(1.0)
    assert average_precision([0.3, 0.2, 0.1], [0, 0, 1]) == pytest.approx(1 / 3)


def test_tied_scores_form_one_threshold():
    # all scores equal: one threshold that takes everything, so AUPRC is the prevalence (no free ranking)
    assert average_precision([0.5] * 8, [1, 0, 0, 1, 0, 0, 0, 0]) == pytest.approx(2 / 8)
    # a tie between an event and a non-event at the top: precision 1/2 at recall 1/2, then 2/3 at 1
    assert average_precision([0.9, 0.9, 0.5, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    # the order of tied items in the input does not matter
    assert average_precision([0.9, 0.9, 0.5, 0.1], [0, 1, 1, 0]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_no_event_gives_nan_and_shapes_must_agree():
    assert math.isnan(average_precision([0.3, 0.2], [0, 0]))
    with pytest.raises(ValueError, match="shape"):
        average_precision([0.1, 0.2], [1])


def test_event_metrics_use_the_magnitude_and_both_constants():
    true = np.array([0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    pred = np.array([0.0, 0.2, 0.0, -0.6, 0.1, 0.0, 0.0, 0.0])  # a negative reward scored by |r_hat|
    m = reward_event_metrics(pred, true)
    assert m["n"] == 8 and m["event_rate"] == pytest.approx(0.25)
    assert m["auprc"] == pytest.approx(1.0)  # both events ranked above every non-event
    assert m["mse_zero"] == pytest.approx(2 / 8)
    assert m["mse_mean"] == pytest.approx(np.var(true))  # the mean is 0 here, so the two constants agree
    assert m["mse"] == pytest.approx(np.mean((pred - true) ** 2))
    with pytest.raises(ValueError):
        reward_event_metrics([0.1], [0.0, 1.0])


def test_the_evaluation_scores_the_reward_head_on_every_window_step(small_data):
    import torch
    from conftest import tiny_config

    from wmhelpers.evaluation.rollouts import evaluate_rollouts, evaluation_windows
    from wmhelpers.models.rssm import RSSMWorldModel

    cfg = tiny_config(context=3, horizon=2, val_episodes=3)
    _, val = small_data.split(cfg)
    model = RSSMWorldModel.from_config(cfg, small_data.num_actions)
    res = evaluate_rollouts({"RSSM": model}, val, cfg, progress=False)
    w = evaluation_windows(val, cfg)
    with torch.no_grad():
        pred = model.one_step(w["obs"], w["action"])["reward"]
    expect = reward_event_metrics(pred.numpy(), w["reward"].numpy())
    assert res["reward"]["RSSM"] == pytest.approx(expect)
    assert res["reward"]["RSSM"]["n"] == w["reward"].numel()
