"""The seed statistics and the facts -> paragraph function, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wmhelpers.config import ExperimentConfig
from wmhelpers.evaluation import seeds as seedstats
from wmhelpers.evaluation import stats
from wmhelpers.evaluation.verdict import (
    Conclusion,
    ablation_facts,
    conclusion_markdown,
    pair_facts,
    reward_constant_mse,
    reward_facts,
    section6_facts,
    show_conclusion,
)


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


def _reward_runs(mse=(0.06, 0.04)):
    """Three seeds of reward metrics: the RSSM's AUPRC is at its event rate, the Transformer's above."""
    def rec(auprc, m):
        return {"reward": {"event_rate": 0.03, "auprc": auprc, "mse": m, "mse_zero": 0.05, "mse_mean": 0.049}}
    return {str(s): {"models": {"RSSM": rec(0.03 + d, mse[0]), "Transformer": rec(0.09 + d, mse[1])}}
            for s, d in enumerate((-0.01, 0.0, 0.01))}


def _d(mean, ci):
    return {"mean": mean, "ci": ci, "n": 3, "direction": stats.decide(mean, ci), "basis": "seeds"}


def _facts(whole, changed, motion=(1.0, 1.0), cost_ratio=1.17, markov_db=0.13, loads=None):
    """Facts with given (mean, ci) of Transformer - RSSM per horizon, each model's changed-pixel margin
    over its own latent-hold, a cost ratio (None: two devices), the Markov check's largest move."""
    def margins(m):
        return {k: {metric: {h: _d(m, 0.1) for h in (1, 3, 5, 10)} for metric in ("whole", "changed")}
                for k in ("latent_hold", "context_mean", "copy_last")}

    return {"horizons": [1, 3, 5, 10], "models": ["RSSM", "Transformer"], "n_seeds": 5,
            "seeds": ["0", "1", "2", "3", "4"], "this_seed": "0", "seed_spread": True,
            "seeds_not_used_because": None,
            "lead": {"whole": {h: _d(*v) for h, v in whole.items()},
                     "changed": {h: _d(*v) for h, v in changed.items()}},
            "baselines": {"RSSM": margins(motion[0]), "Transformer": margins(motion[1])},
            **section6_facts({"ks": [1, 2, 4], "longest": 8, "models": {"RSSM": {"upper": [markov_db, 0.0, 0.0]},
                                                                      "Transformer": {"upper": [0.01, 0.0, 0.0]}}},
                             loads, "the notebook's budget"),
            "cost": {"same_device": cost_ratio is not None, "projected": True, "device": "cpu: Test CPU, 2 threads",
                     "ms_per_step": {"RSSM": 400.0, "Transformer": 468.0}, "ratio": cost_ratio}}


RSSM_EARLY = ({1: (-0.32, 0.19), 3: (-0.2, 0.15), 5: (0.05, 0.2), 10: (0.1, 0.3)},
              {1: (-0.32, 0.18), 3: (-0.1, 0.2), 5: (0.0, 0.2), 10: (0.1, 0.3)})


def test_the_paragraph_is_one_paragraph_of_at_most_220_words_with_this_runs_numbers():
    text = conclusion_markdown(_facts(*RSSM_EARLY))
    assert "\n" not in text and not text.lstrip().startswith(("*", "-")) and len(text.split()) <= 220
    assert text.startswith("Over 5 training seeds (this run is seed 0), the RSSM imagines better at h = 1 and 3 on "
                           "the whole frame (by 0.32 ± 0.19 dB at h = 1) and at h = 1 on changed pixels (by 0.32 ± "
                           "0.18 dB); at every other horizon the two cannot be told apart.")
    assert "Both learned motion" in text and "lose at most 0.13 dB (RSSM) and 0.01 dB (Transformer)" in text
    assert "costs 1.17× the RSSM's" in text
    assert text.endswith("In short: on short windows of a reactive game the backbone makes a difference in the "
                         "first steps only.")
    shown = show_conclusion(_facts(*RSSM_EARLY))
    assert isinstance(shown, Conclusion) and repr(shown) == text == shown._repr_markdown_()


def test_the_paragraph_follows_other_numbers():
    flipped = tuple({h: (-m, c) for h, (m, c) in spec.items()} for spec in RSSM_EARLY)
    text = conclusion_markdown(_facts(*flipped, motion=(-1.0, 1.0), cost_ratio=0.8, markov_db=1.4))
    assert "the Transformer imagines better at h = 1 and 3 on the whole frame" in text
    assert "the RSSM imagines" not in text
    assert "Only the Transformer learned motion" in text and "costs 0.80× the RSSM's" in text
    assert "at most 1.40 dB (RSSM)" in text and "makes a difference in the first steps only" in text
    late = {h: (0.5, 0.1) for h in (1, 3, 5, 10)}
    assert "the backbone matters beyond the first steps" in conclusion_markdown(_facts(late, late))
    ties = {h: (0.05, 0.2) for h in (1, 3, 5, 10)}
    text = conclusion_markdown(_facts(ties, ties, motion=(-1.0, -1.0), cost_ratio=None))
    assert "neither world model imagines better at any horizon scored (the largest difference is 0.05" in text
    assert "Neither beats its own latent-hold" in text and "wall clocks are not compared" in text
    assert "the backbone makes no difference we can measure." in text
    def load(backbone, window, rising=0.0):
        return {"beyond": [20, 24], "n_seeds": 5, "backbone": _d(*backbone), "window": _d(*window),
                "still_rising": {"RSSM": _d(rising, 0.01)}}

    loads = {"identify": load((0.0, 0.1), (0.5, 0.1)), "copy": load((0.2, 0.05), (0.0, 0.1), rising=0.1)}
    text = conclusion_markdown(_facts(*RSSM_EARLY, loads=loads))
    assert ("Past the main window (gaps 20, 24; 5 seeds, the notebook's budget, some curves still rising), with "
            "full-window attention: to identify a cue, the GRU and attention cannot be told apart (0.00 ± 0.10) and "
            "the short window costs recall; to copy a whole frame, attention recalls more than the GRU (0.20 ± 0.05) "
            "and the short window costs nothing measurable.") in text
    assert text.endswith("when a cue must be carried past the window, attention recalls more than the GRU.")
    loads["copy"] = load((-0.2, 0.05), (0.0, 0.1))
    text = conclusion_markdown(_facts(*RSSM_EARLY, loads=loads))
    assert "the GRU recalls more than attention" in text and "curves still rising" not in text
    same = {"identify": load((0.04, 0.1), (0.5, 0.1)), "copy": load((0.03, 0.04), (0.4, 0.1))}
    assert ("to identify a cue or to copy a whole frame, the GRU and attention cannot be told apart (0.04 ± 0.10; "
            "0.03 ± 0.04) and the short window costs recall.") in conclusion_markdown(_facts(*RSSM_EARLY, loads=same))
    assert text.endswith("when a cue must be carried past the window, the GRU recalls more than attention.")
    loads = {"identify": load((0.0, 0.1), (0.5, 0.1)), "copy": load((0.0, 0.05), (0.0, 0.1))}
    text = conclusion_markdown(_facts(*RSSM_EARLY, loads=loads))
    assert text.endswith("what decides is the window, not the backbone.")


def test_reward_constant_is_the_mean_squared_reward():
    assert reward_constant_mse([0, 0, 1, -1]) == pytest.approx(0.5)


def test_reward_facts_decide_across_seeds_by_the_same_rule():
    r = reward_facts(_reward_runs(), ("RSSM", "Transformer"))["models"]
    # RSSM: AUPRC - rate = -0.01, 0, 0.01 -> mean 0, a tie; Transformer: 0.05, 0.06, 0.07 -> above
    assert r["RSSM"]["auprc_vs_rate"]["mean"] == pytest.approx(0.0) and r["RSSM"]["auprc_vs_rate"]["direction"] == 0
    assert r["Transformer"]["auprc_vs_rate"]["ci"] == pytest.approx(4.3027 * 0.01 / math.sqrt(3), abs=1e-4)
    assert r["Transformer"]["auprc_vs_rate"]["direction"] == 1
    # MSE minus that of predicting 0: +0.01 in every seed (sd 0) -> above; the Transformer's -0.01 -> below
    assert r["RSSM"]["mse_vs_zero"]["direction"] == 1 and r["Transformer"]["mse_vs_zero"]["direction"] == -1
    assert r["Transformer"]["mse_vs_zero"]["mean"] == pytest.approx(-0.01)


def _results(rssm, tf):
    """A minimal evaluate_rollouts output for 2 horizons (raw windows: 3, all equal to the mean)."""
    def curves(v):
        return {"mode": {"whole": {"mean": v}, "changed": {"mean": v}},
                "recon_ceiling": {"whole": {"mean": v}, "changed": {"mean": v}},
                "latent_hold": {"whole": {"mean": [x - 1 for x in v]}, "changed": {"mean": [x - 1 for x in v]}}}
    raw = {}
    for name, v in (("RSSM", rssm), ("Transformer", tf)):
        for curve, shift in (("mode", 0), ("latent_hold", -1), ("recon_ceiling", 0)):
            raw[(name, curve)] = {m: np.tile(np.asarray(v, float) + shift, (3, 1)) for m in ("whole", "changed")}
    for key in ("copy_last", "context_mean"):
        raw[("baselines", key)] = {m: np.zeros((3, 2)) for m in ("whole", "changed")}
    rew = {"n": 10, "event_rate": 0.1, "auprc": 0.2, "mse": 0.09, "mse_zero": 0.1, "mse_mean": 0.09}
    return {"horizons": [1, 2], "models": {"RSSM": curves(rssm), "Transformer": curves(tf)},
            "baselines": {k: {m: {"mean": [0.0, 0.0]} for m in ("whole", "changed")}
                          for k in ("copy_last", "context_mean")},
            "raw": raw, "reward": {"RSSM": rew, "Transformer": rew}}


def test_this_run_replaces_the_seeds_files_entry_for_its_own_seed():
    cfg = ExperimentConfig()
    hist = {n: {"device_record": {"type": "cpu", "name": "x", "threads": 2}, "ms_per_step": 100.0, "device": "x"}
            for n in ("RSSM", "Transformer")}
    shipped = {str(s): seedstats.seed_record(_results([20.0, 10.0], [20.0 + s, 10.0]), hist) for s in range(3)}
    doc = {"config": cfg.to_dict(), "runs": shipped}
    mine = _results([20.0, 10.0], [26.0, 10.0])  # seed 0 of THIS run: the Transformer leads by 6, not 0
    merged = seedstats.merge(mine, hist, cfg, doc)
    facts = pair_facts(mine, merged, cfg, horizons=(1, 2))
    # seed-by-seed differences at h = 1: this run's 6, then the file's 1 and 2 -> mean 3 (the file's 0 is gone)
    assert facts["lead"]["whole"][1]["mean"] == pytest.approx(3.0) and facts["lead"]["whole"][1]["basis"] == "seeds"
    assert facts["seeds"] == ["0", "1", "2"] and facts["replaced_shipped"] and merged["shipped"] is shipped["0"]
    assert facts["ceiling"]["whole"][1]["mean"] == pytest.approx(3.0)  # the reconstruction ceilings, the same way
    # a file made with another budget is not borrowed: this run stands alone, on its windows
    other = dict(doc, config=cfg.replace(train_steps=10).to_dict())
    alone = pair_facts(mine, seedstats.merge(mine, hist, cfg, other), cfg, horizons=(1, 2))
    assert alone["n_seeds"] == 1 and alone["lead"]["whole"][1]["basis"] == "windows"
    assert alone["seeds_not_used_because"] == ["train_steps"]
    assert conclusion_markdown(alone).startswith("For this one trained pair (no seed spread: train_steps)")


def test_the_ablation_is_decided_by_the_same_rule():
    runs = {str(s): _run([20.0, 10.0], [20.0 + d, 10.0], [0, 0]) for s, d in enumerate((-0.3, -0.2, -0.25))}
    var = {str(s): {"models": {"Transformer": _run([0, 0], [20.0 + d, 10.0], [0, 0])["models"]["Transformer"]}}
           for s, d in enumerate((0.1, -0.1, 0.05))}
    merged = {"runs": runs, "borrowed": {"variants": {"tf2": {"overrides": {"tf_layers": 2}, "runs": var}}}}
    ab = ablation_facts(merged)
    assert ab["lead"]["whole"]["mean"] == pytest.approx(0.05 / 3)  # (0.1 - 0.1 + 0.05) / 3
    assert ab["lead"]["whole"]["direction"] == 0 and ab["overrides"] == {"tf_layers": 2} and ab["seeds"] == list(runs)
