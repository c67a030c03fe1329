"""The reward ceiling probe: which frames each view pairs with which reward, and that it runs."""

from __future__ import annotations

import math

import numpy as np
from conftest import make_dataset

from wmhelpers.runs import reward_probe


def test_views_pair_the_right_frames_with_each_reward():
    data = make_dataset([5, 6], terminated_episodes={0})
    ep = data.arrays["episode"]
    before = reward_probe._pairs(data, "before")
    assert (before["a"] == before["t"] - 1).all() and (before["b"] == before["t"]).all()
    assert (ep[before["a"]] == ep[before["t"]]).all() and 5 not in before["t"]  # no pair across the episode start
    after = reward_probe._pairs(data, "after")
    assert (after["a"] == after["t"]).all() and (after["b"] == after["t"] + 1).all()
    assert 4 not in after["t"]  # the last step of an episode has no next frame in it


def test_the_probe_scores_every_validation_step(monkeypatch):
    data = make_dataset([30, 30, 30], seed=1)
    data.arrays["reward"] = np.where(np.arange(90) % 7 == 3, 1.0, 0.0).astype(np.float32)
    train, val = data._rows(0, 60), data._rows(60, 90)
    out = reward_probe.probe_view(train, val, "before", steps=3, batch=8, seed=0, progress=False)
    assert out["n"] == len(reward_probe._pairs(val, "before")["t"])
    assert out["prevalence"] == np.mean(val.arrays["reward"][reward_probe._pairs(val, "before")["t"]] != 0)
    assert 0 < out["auprc"] <= 1 and not math.isnan(out["auprc"])
