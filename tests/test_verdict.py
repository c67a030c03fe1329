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
    conclusion_markdown,
    decide_facts,
    headline,
    memory_facts,
    reward_constant_mse,
    reward_facts,
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
            "reward": reward_facts(_reward_runs(reward_loss), ("RSSM", "Transformer")),
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
    assert "the RSSM's head (AUPRC 0.030 against an event rate of 0.030, 3 seeds) is cannot be told apart from" \
        not in text  # the verdict words read as English
    assert "the RSSM's head (AUPRC 0.030 against an event rate of 0.030, 3 seeds) cannot be told apart from" in text
    assert "the Transformer's head (AUPRC 0.090 against an event rate of 0.030, 3 seeds) lies above" in text
    assert text.startswith("**In one line:** over 3 training seeds, on the whole frame the RSSM imagines better at "
                           "h = 1 (largest lead 0.31 dB, 7 % less squared error); on changed pixels the Transformer")
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


def test_reward_facts_decide_across_seeds_by_the_same_rule():
    r = reward_facts(_reward_runs(), ("RSSM", "Transformer"))["models"]
    # RSSM: AUPRC - rate = -0.01, 0, 0.01 -> mean 0, a tie; Transformer: 0.05, 0.06, 0.07 -> above
    assert r["RSSM"]["auprc_vs_rate"]["mean"] == pytest.approx(0.0)
    assert r["RSSM"]["auprc_vs_rate"]["verdict"] == "cannot be told apart from"
    assert r["Transformer"]["auprc_vs_rate"]["ci"] == pytest.approx(4.3027 * 0.01 / math.sqrt(3), abs=1e-4)
    assert r["Transformer"]["auprc_vs_rate"]["verdict"] == "above"
    # MSE minus that of predicting 0: +0.01 in every seed (sd 0) -> above; the Transformer's -0.01 -> below
    assert r["RSSM"]["mse_vs_zero"]["verdict"] == "above" and r["Transformer"]["mse_vs_zero"]["verdict"] == "below"
    assert r["Transformer"]["mse_vs_zero"]["mean"] == pytest.approx(-0.01)


def _results(rssm, tf):
    """A minimal evaluate_rollouts output for 2 horizons (raw windows: 3, all equal to the mean)."""
    def curves(v):
        return {"mode": {"whole": {"mean": v}, "changed": {"mean": v}},
                "latent_hold": {"whole": {"mean": [x - 1 for x in v]}, "changed": {"mean": [x - 1 for x in v]}}}
    raw = {}
    for name, v in (("RSSM", rssm), ("Transformer", tf)):
        for curve, shift in (("mode", 0), ("latent_hold", -1)):
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
    facts = decide_facts(mine, hist, cfg, doc, horizons=(1, 2))
    # seed-by-seed differences at h = 1: this run's 6, then the file's 1 and 2 -> mean 3 (the file's 0 is gone)
    assert facts["lead"]["whole"][1]["mean"] == pytest.approx(3.0)
    assert facts["seeds"] == ["0", "1", "2"] and facts["replaced_shipped"]
    assert "in place of the seeds file's entry for it" in conclusion_markdown(facts)
    # a file made with another budget is not borrowed: this run stands alone, on its windows
    other = dict(doc, config=cfg.replace(train_steps=10).to_dict())
    alone = decide_facts(mine, hist, cfg, other, horizons=(1, 2))
    assert alone["n_seeds"] == 1 and alone["lead"]["whole"][1]["basis"] == "windows"


def test_memory_facts_join_this_run_as_its_own_seed():
    cfg = ExperimentConfig()
    mcfg = {"gaps": [2, 20]}

    def run(rssm, tf):
        return {"config": mcfg, "chance": 0.125, "models": {
            "RSSM": {"identified": {"memory": rssm, "control": [1.0, 1.0]}},
            "Transformer": {"identified": {"memory": tf, "control": [1.0, 1.0]}}}}
    borrowed = {"memory": {"config": mcfg, "runs": {"0": run([0.0, 0.0], [0.0, 0.0]), "1": run([0.9, 0.9], [1.0, 0.5]),
                                                  "2": run([0.9, 0.9], [1.0, 0.3])}}}
    facts = memory_facts(run([0.9, 0.9], [1.0, 0.4]), borrowed, cfg)
    assert facts["seeds"] == ["0", "1", "2"]  # this run's seed 0 replaced the file's zeros
    assert facts["models"]["RSSM"]["memory"][0]["recall"] == pytest.approx(0.9)
    # L = 20: Transformer - RSSM = -0.5, -0.4, -0.6 -> the RSSM recalls more
    assert facts["difference"][1]["mean"] == pytest.approx(-0.5)
    assert facts["difference"][1]["verdict"] == "the RSSM recalls more"
    assert facts["models"]["Transformer"]["memory"][0]["verdict"] == "above chance"


def test_the_headline_names_the_leader_and_the_conclusion_is_its_own_text():
    facts = _facts({1: (-0.31, 0.12, "leads"), 10: (0.05, 0.2, "cannot be told apart")},
                   {1: (-0.2, 0.1, "leads"), 10: (-0.02, 0.3, "cannot be told apart")})
    line = headline(facts)
    assert "the RSSM imagines better" in line and "h = 1" in line and "27 % less squared error" not in line
    assert f"{100 * (1 - 10 ** (-0.031)):.0f} % less squared error" in line and "not something the eye" in line
    shown = show_conclusion(facts)
    assert isinstance(shown, Conclusion) and repr(shown) == conclusion_markdown(facts) == shown._repr_markdown_()


def test_the_ablation_is_decided_by_the_same_rule_and_compared_with_the_main_verdict():
    from wmhelpers.evaluation.verdict import ablation_facts

    runs = {str(s): _run([20.0, 10.0], [20.0 + d, 10.0], [0, 0]) for s, d in enumerate((-0.3, -0.2, -0.25))}
    var = {str(s): {"models": {"Transformer": _run([0, 0], [20.0 + d, 10.0], [0, 0])["models"]["Transformer"]}}
           for s, d in enumerate((0.1, -0.1, 0.05))}
    ab = ablation_facts({"variants": {"tf2": {"overrides": {"tf_layers": 2}, "runs": var}}}, runs)
    assert ab["lead"]["whole"]["mean"] == pytest.approx(0.05 / 3)  # (0.1 - 0.1 + 0.05) / 3
    assert ab["lead"]["whole"]["verdict"] == "cannot be told apart"
    facts = _facts({1: (-0.25, 0.12, "leads"), 10: (0.0, 0.2, "cannot be told apart")},
                   {1: (-0.25, 0.12, "leads"), 10: (0.0, 0.2, "cannot be told apart")})
    facts["ablation"] = ab
    text = conclusion_markdown(facts)
    assert "the ablation tf2 (tf_layers=2: fewer dynamics parameters than the RSSM)" in text
    assert "so matching capacity changes the verdict" in text  # main: the RSSM leads; ablation: a tie
