"""The seed statistics and the facts -> paragraph function, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wmhelpers.evaluation import seeds as seedstats
from wmhelpers.evaluation import stats
from wmhelpers.evaluation.verdict import conclusion_markdown, reward_constant_mse


def test_t_interval_over_seeds_matches_a_hand_computation():
    # values 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.3027 -> half-width 4.3027 / sqrt(3) = 2.4841
    out = stats.interval([[1.0], [2.0], [3.0]])
    assert out["mean"][0] == pytest.approx(2.0) and out["sd"][0] == pytest.approx(1.0)
    assert out["ci"][0] == pytest.approx(2.4841, abs=1e-4)
    # five seeds: the multiplier is 2.776, not 1.96
    five = stats.interval([[0.0], [0.0], [0.0], [0.0], [1.0]])
    assert five["ci"][0] == pytest.approx(2.7764 * math.sqrt(0.2) / math.sqrt(5), abs=1e-4)
    assert math.isnan(stats.interval([[4.0]])["ci"][0])


def _run(rssm, tf, copy_last):
    def curves(v):
        return {"mode": {"whole": {"mean": v}, "changed": {"mean": v}},
                "latent_hold": {"whole": {"mean": [x - 1 for x in v]}, "changed": {"mean": [x - 1 for x in v]}}}
    return {"models": {"RSSM": {"psnr": curves(rssm)}, "Transformer": {"psnr": curves(tf)}},
            "baselines": {"copy_last": {"whole": {"mean": copy_last}, "changed": {"mean": copy_last}}}}


def test_seed_by_seed_difference_spread():
    runs = {"0": _run([20.0, 10.0], [21.0, 10.0], [0, 0]), "1": _run([20.0, 12.0], [22.0, 11.0], [0, 0]),
            "2": _run([21.0, 11.0], [24.0, 13.0], [0, 0])}
    s = seedstats.spread(runs, ("Transformer", "mode"), ("RSSM", "mode"), "whole")
    # differences per seed: h1 = 1, 2, 3 ; h2 = 0, -1, 2
    assert s["mean"] == pytest.approx([2.0, 1 / 3])
    assert s["ci"][0] == pytest.approx(2.4841, abs=1e-4)
    assert s["ci"][1] == pytest.approx(4.3027 * np.std([0, -1, 2], ddof=1) / math.sqrt(3), abs=1e-4)
    assert s["n"] == 3


def _facts(lead_whole, lead_changed, reward_loss=(0.06, 0.04), same_device=True):
    def lead(spec):
        out = {}
        for h, (mean, ci, verdict) in spec.items():
            out[h] = {"mean": mean, "ci": ci, "verdict": verdict,
                      "leader": ("Transformer" if mean > 0 else "RSSM") if verdict == "leads" else None}
        return out

    def margins(verdict, mean):
        return {k: {m: {h: {"mean": mean, "ci": 0.1, "verdict": verdict} for h in (1, 10)}
                    for m in ("whole", "changed")} for k in ("latent_hold", "context_mean", "copy_last")}

    return {"horizons": [1, 10], "models": ["RSSM", "Transformer"], "n_seeds": 3, "seeds": ["0", "1", "2"],
            "this_seed": "0", "seed_spread": True, "seeds_not_used_because": None,
            "budget": {"train_steps": 1750, "batch_size": 16, "seq_len": 16, "lr": 1e-3, "preset": "cpu"},
            "device": "cpu: Test CPU, 2 threads",
            "lead": {"whole": lead(lead_whole), "changed": lead(lead_changed)},
            "baselines": {"RSSM": margins("beats", 1.25), "Transformer": margins("falls below", -0.5)},
            "reward": {"constant": 0.05, "loss": {"RSSM": reward_loss[0], "Transformer": reward_loss[1]},
                       "verdict": {"RSSM": "beats" if reward_loss[0] < 0.05 else "does not beat",
                                   "Transformer": "beats" if reward_loss[1] < 0.05 else "does not beat"}},
            "cost": {"same_device": same_device, "devices": {"RSSM": "cpu: A", "Transformer": "cpu: B"},
                     "ms_per_step": {"RSSM": 400.0, "Transformer": 300.0}, "ratio": 0.75 if same_device else None}}


def test_paragraph_states_a_lead_a_tie_and_a_loss():
    facts = _facts({1: (-0.31, 0.12, "leads"), 10: (0.05, 0.2, "cannot be told apart")},
                   {1: (0.44, 0.2, "leads"), 10: (-0.02, 0.3, "cannot be told apart")})
    text = conclusion_markdown(facts)
    assert "at h = 1 the RSSM leads by +0.31 ± 0.12 dB" in text          # a lead by the RSSM (a loss for the TF)
    assert "at h = 1 the Transformer leads by +0.44 ± 0.20 dB" in text  # a lead by the Transformer
    assert "at h = 10 the two cannot be told apart" in text             # a tie
    assert "3 training seeds" in text
    assert "beats its own latent-hold" in text and "falls below its own latent-hold" in text
    assert "the RSSM's head (0.0600) does not beat it" in text and "the Transformer's head (0.0400) beats it" in text
    assert "ratio 0.75" in text


def test_paragraph_without_seed_spread_or_same_device_says_so():
    facts = _facts({1: (0.3, 0.1, "leads"), 10: (0.0, 0.1, "cannot be told apart")},
                   {1: (0.3, 0.1, "leads"), 10: (0.0, 0.1, "cannot be told apart")}, same_device=False)
    facts.update(seed_spread=False, n_seeds=1, seeds_not_used_because=["train_steps"])
    text = conclusion_markdown(facts)
    assert "This budget has no seed spread" in text and "train_steps" in text
    assert "wall clocks are not compared" in text and "(ratio" not in text


def test_reward_constant_is_the_mean_squared_reward():
    assert reward_constant_mse([0, 0, 1, -1]) == pytest.approx(0.5)
