"""The gap figure's numbers and the per-seed difference table, against a hand computation on a
tiny hand-made seeds file: 3 seeds, so t_{0.975, 2} = 4.303 and half-width = 4.303 · sd / √3."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from wmhelpers.evaluation import gaps, tables
from wmhelpers.notebook_tools import plots

H = 10
# Transformer - RSSM per seed, at (metric, h); every other horizon: no difference
DIFF = {("whole", 1): {"0": 0.1, "1": 0.2, "2": 0.3},      # mean 0.2, sd 0.1: interval contains 0
        ("whole", 10): {"0": 0.5, "1": 0.6, "2": 0.7},     # mean 0.6, sd 0.1: wholly above 0
        ("changed", 1): {"0": -1.0, "1": -1.1, "2": -0.9},  # mean -1.0, sd 0.1: wholly below 0
        ("changed", 10): {"0": 0.0, "1": 0.3, "2": -0.3}}   # mean 0, sd 0.3
T3 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)


def _run(seed: str) -> dict:
    models = {}
    for name in ("RSSM", "Transformer"):
        psnr = {}
        for metric, base in (("whole", 25.0), ("changed", 13.0)):
            mean = [base - 0.1 * h + 0.01 * int(seed) for h in range(1, H + 1)]
            if name == "Transformer":
                for (m, h), d in DIFF.items():
                    if m == metric:
                        mean[h - 1] += d[seed]
            psnr[metric] = {"mean": mean, "ci": [0.1] * H}
        models[name] = {"psnr": {"mode": psnr}}
    return {"models": models, "baselines": {}}


def _runs() -> dict:
    return {s: _run(s) for s in ("2", "0", "1")}  # out of order on purpose


def test_gap_data_is_the_seed_by_seed_difference():
    g = gaps.gap_data(_runs())
    assert set(g) == {"whole", "changed"}
    w = g["whole"]
    assert w["seeds"] == ["0", "1", "2"] and w["n"] == 3 and w["horizons"] == list(range(1, H + 1))
    assert w["per_seed"].shape == (3, H)
    assert np.allclose(w["per_seed"][:, 0], [0.1, 0.2, 0.3]) and np.allclose(w["per_seed"][:, 1:9], 0)
    assert w["mean"][0] == pytest.approx(0.2) and w["sd"][0] == pytest.approx(0.1)
    assert w["ci"][0] == pytest.approx(T3 * 0.1 / math.sqrt(3))
    assert w["mean"][9] == pytest.approx(0.6)
    assert g["changed"]["mean"][0] == pytest.approx(-1.0)
    # the other order is the negative
    assert np.allclose(gaps.gap_data(_runs(), "Transformer", "RSSM")["whole"]["per_seed"], -w["per_seed"])


def test_difference_table_against_a_hand_computation():
    d = gaps.difference_table(_runs())
    assert d["columns"] == [("whole", 1), ("whole", 10), ("changed", 1), ("changed", 10)]
    assert d["seeds"] == ["0", "1", "2"]
    assert d["diff"]["1"] == pytest.approx([0.2, 0.6, -1.1, 0.3])
    assert d["mean"] == pytest.approx([0.2, 0.6, -1.0, 0.0], abs=1e-12)
    assert d["sd"] == pytest.approx([0.1, 0.1, 0.1, 0.3])
    assert d["n"] == [3, 3, 3, 3]
    assert d["t"] == pytest.approx([T3] * 4) and round(d["t"][0], 2) == 4.30
    half = [T3 * s / math.sqrt(3) for s in (0.1, 0.1, 0.1, 0.3)]
    assert d["half"] == pytest.approx(half)  # 0.2484, 0.2484, 0.2484, 0.7452
    assert d["lo"] == pytest.approx([0.2 - half[0], 0.6 - half[1], -1.0 - half[2], -half[3]])
    assert d["hi"] == pytest.approx([0.2 + half[0], 0.6 + half[1], -1.0 + half[2], half[3]])
    assert d["verdict"] == ["cannot be told apart", "Transformer leads", "RSSM leads", "cannot be told apart"]


def test_difference_table_uses_the_verdicts_rule():
    from wmhelpers.evaluation.stats import decide

    d = gaps.difference_table(_runs())
    words = {1: "Transformer leads", -1: "RSSM leads", 0: "cannot be told apart"}
    assert d["verdict"] == [words[decide(m, c)] for m, c in zip(d["mean"], d["half"])]
    assert d["direction"] == [decide(m, c) for m, c in zip(d["mean"], d["half"])] == [0, 1, -1, 0]


def test_decide_gives_a_direction_and_a_single_seed_is_a_tie():
    from wmhelpers.evaluation.stats import decide, over_seeds

    assert (decide(0.3, 0.2), decide(-0.3, 0.2), decide(0.1, 0.2), decide(5.0, float("nan"))) == (1, -1, 0, 0)
    d = over_seeds([0.3, 0.31, 0.29])
    assert d["direction"] == 1 and d["n"] == 3 and d["mean"] == pytest.approx(0.3)
    assert over_seeds([1.0])["direction"] == 0


def test_one_seed_has_no_interval_and_no_verdict_word_but_a_tie():
    d = gaps.difference_table({"0": _run("0")})
    assert all(math.isnan(v) for v in d["half"] + d["t"]) and set(d["verdict"]) == {"cannot be told apart"}
    text = str(tables.difference_table({"0": _run("0")}))
    assert "n/a" in text


def test_difference_table_renders_as_text_and_html():
    t = tables.difference_table(_runs(), this_seed=0)
    text = str(t)
    assert max(len(line) for line in text.splitlines()) <= tables.TEXT_WIDTH
    assert "0 (this run)" in text and "+0.200" in text and "4.30" in text and "0.248" in text
    assert "[-0.048, +0.448]" in text and "Transformer leads" in text and "RSSM leads" in text
    html = t._repr_html_()
    assert html.count("<tr>") == 1 + 3 + 7 and "text-align:right" in html and "4.30" in html


def test_gap_figure_draws_each_seed_the_mean_and_zero():
    runs = _runs()
    fig = plots.gap_vs_horizon(runs, this_seed=0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    zero = [ln for ln in ax.lines if ln.get_label() == "0: no difference"]
    assert zero and np.allclose(zero[0].get_ydata(), 0)
    seeds = [ln for ln in ax.lines if ln.get_label() in ("each training seed", "seed 0 (this run)")]
    assert len(seeds) == 3
    assert np.allclose(sorted(ln.get_ydata()[0] for ln in seeds), [0.1, 0.2, 0.3])
    bars = [c for c in ax.containers if c.get_label().startswith("mean over 3 seeds")]
    assert bars and np.allclose(bars[0].lines[0].get_ydata(), gaps.gap_data(runs)["whole"]["mean"])
    lo, hi = ax.get_ylim()
    assert lo < 0 < hi and hi - lo < 2  # zoomed to the differences, in dB, zero in view
    assert fig.get_figwidth() <= 10 and len(fig.legends) == 1
    assert "Transformer − RSSM PSNR (dB)" == ax.get_ylabel()
    assert len(plots.gap_vs_horizon({"0": _run("0")}).axes) == 2  # one seed: drawn, no interval
