"""Tables as tables: HTML in Jupyter, plain text no wider than a 1000 px page under print()."""

from __future__ import annotations

import math

from wmhelpers.evaluation import tables

H = 10


def _curve(base, slope=-0.2, capped=None):
    mean = [base + slope * h for h in range(H)]
    return {"whole": {"mean": mean, "ci": [0.1] * H, "capped": capped or [0] * H},
            "changed": {"mean": [m - 10 for m in mean], "ci": [0.1] * H, "capped": [0] * H}}


def _results():
    models = {name: {c: _curve(base) for c in ("mode", "sampled", "latent_hold", "recon_ceiling", "teacher_forced")}
              for name, base in (("RSSM", 28.0), ("Transformer", 27.5))}
    return {"horizons": list(range(1, H + 1)), "models": models,
            "baselines": {"copy_last": _curve(26.0, capped=[2] + [0] * (H - 1)), "context_mean": _curve(25.0)}}


def _runs():
    models = (("RSSM", 28), ("Transformer", 27.8))
    return {s: {"models": {n: {"psnr": {"mode": _curve(b + 0.1 * int(s))}} for n, b in models}}
            for s in ("0", "1", "2", "3", "4")}


def _width(text):
    return max(len(line) for line in text.splitlines())


def test_table_renders_html_and_text():
    t = tables.Table(["name", "x", "y"], [["a", 1.234, 5], None, ["b", math.nan, "w"]], title="T", caption="c",
                     groups=[("", 1), ("both", 2)])
    text = str(t)
    lines = text.splitlines()
    assert lines[0] == "T" and "both" in lines[1] and lines[2].split() == ["name", "x", "y"]
    assert "1.23" in text and "n/a" in text and lines[-1] == "c"
    assert sum(set(line) == {"-"} for line in lines) == 2  # under the header and the rule
    html = t._repr_html_()
    assert html.count("<table") == 1 and 'colspan="2"' in html and "border-top" in html
    assert "text-align:right\">1.23</td>" in html and "text-align:left\">a</td>" in html

    class P:
        def text(self, s):
            self.s = s

    p = P()
    t._repr_pretty_(p, False)
    assert p.s == text


def test_psnr_table_has_every_curve_at_every_horizon_asked_for():
    res = _results()
    t = tables.psnr_table(res)
    text = str(t)
    assert _width(text) <= tables.TEXT_WIDTH
    labels = [r[0] for r in t.rows]
    assert labels[:5] == ["RSSM mode", "RSSM sampled", "RSSM latent-hold", "RSSM recon-ceiling", "RSSM teacher-forced"]
    assert labels[-2:] == ["copy-last", "context-mean"] and len(labels) == 12
    assert t.rows[0][1:] == [28.0 - 0.2 * h for h in (0, 2, 4, 9)] + [18.0 - 0.2 * h for h in (0, 2, 4, 9)]
    assert "copy-last whole h=1: 2" in text and len(t.columns) == 9
    assert "<table" in t._repr_html_()


def test_seed_table_rows_means_and_width():
    runs = _runs()
    t = tables.seed_table(runs, this_seed=0, shipped=runs["0"])
    text = str(t)
    assert _width(text) <= tables.TEXT_WIDTH
    labels = [r[0] for r in t.rows if r is not None]
    assert labels[:4] == ["0 (this run)", "0 (this run)", "0 (shipped)", "0 (shipped)"]
    mean = [r for r in t.rows if r is not None and r[:2] == ["mean", "RSSM"]][0]
    assert abs(mean[2] - 28.2) < 1e-9  # the mean of 28.0 .. 28.4: the shipped rows are not in it
    half = [r for r in t.rows if r is not None and r[:2] == ["± (95 % t)", "RSSM"]][0]
    assert abs(half[2] - 2.776445 * math.sqrt(0.025) / math.sqrt(5)) < 1e-5  # sd of 0,.1,..,.4 = sqrt(0.025)
    assert "5 training seeds" in t.caption and "in the mean and the verdict" in t.caption
    assert "Two rows for seed 0" in t.caption
    assert "<table" in t._repr_html_() and "0 (shipped)" in t._repr_html_()
    assert "mean" not in [r[0] for r in tables.seed_table({"0": runs["0"]}).rows if r is not None]


def _facts_of(runs):
    from wmhelpers.config import ExperimentConfig
    from wmhelpers.evaluation.verdict import pair_facts

    for run in runs.values():
        for name, model in run["models"].items():
            model["psnr"]["latent_hold"] = _curve(27.0 if name == "RSSM" else 28.5)
            model["psnr"]["recon_ceiling"] = _curve(29.0)
            model["reward"] = {"event_rate": 0.03, "auprc": 0.05, "mse": 0.03, "mse_zero": 0.031, "mse_mean": 0.0305}
        run["baselines"] = {k: _curve(26.0) for k in ("copy_last", "context_mean")}
    merged = {"runs": runs, "borrowed": None, "differences": [], "shipped": None}
    return pair_facts({"horizons": list(range(1, H + 1))}, merged, ExperimentConfig())


def test_verdict_tables_show_every_direction_with_its_mark_and_fit_the_page():
    runs = _runs()
    facts = _facts_of(runs)
    t = tables.baseline_margin_table(facts)
    rssm_hold = [r for r in t.rows if r and r[:3] == ["RSSM", "whole", "latent-hold"]][0]
    tf_hold = [r for r in t.rows if r and r[:3] == ["Transformer", "whole", "latent-hold"]][0]
    assert rssm_hold[3].endswith("▲") and tf_hold[3].endswith("▼")  # 28 + 0.2 > 27 + 0.2; 27.8 < 28.5
    assert [c.split()[-1] for c in rssm_hold[3:]] == ["▲"] * 4 and _width(str(t)) <= 110
    r = tables.reward_verdict_table(facts)
    assert [row[0] for row in r.rows] == ["RSSM", "Transformer"] and r.rows[0][3].endswith("▲")  # 0.02 above
    assert r.title != t.title
    runs["4"]["models"]["RSSM"]["reward"] = None  # a record made before reward heads were scored
    t2 = tables.reward_table(runs)
    assert "No row for RSSM seed 4" in t2.caption and len(t2.rows) == 9


def test_difference_tables_carry_the_ceiling_gap_and_their_own_titles():
    runs = _runs()
    for run in runs.values():
        for name, model in run["models"].items():
            model["psnr"]["recon_ceiling"] = _curve(29.1 if name == "RSSM" else 28.9)
    main = tables.difference_table(runs, horizons=(1, 3, 5, 10))
    ablation = tables.difference_table(runs, horizons=(1,), title="2-layer ablation − RSSM")
    assert main.title != ablation.title and ablation.title == "2-layer ablation − RSSM"
    gap = [r for r in main.rows if r and r[0] == "ceiling gap"][0]
    assert [round(v, 6) for v in gap[1:]] == [-0.2] * 8 and "ceiling gap" in main.caption


def test_memory_table_marks_each_comparison():
    def d(mean, direction):
        return {"mean": mean, "ci": 0.1, "n": 5, "direction": direction}

    summary = {"copy": {"metric": "match", "gaps": [2, 20], "chance": 0.3, "conditions": {
        "RSSM": {"memory": [d(0.8, 1), d(0.5, 1)], "minus_chance": [d(0.5, 1), d(0.2, 1)],
                 "minus_control": [d(0.0, 0), d(-0.3, -1)]},
        "Transformer, full window": {"memory": [d(0.9, 1), d(0.8, 1)], "minus_chance": [d(0.6, 1), d(0.5, 1)],
                                     "minus_control": [d(0.0, 0), d(0.0, 0)],
                                     "minus_rssm": [d(0.1, 0), d(0.3, 1)]}}}}
    t = tables.memory_table(summary, "copy")
    assert t.rows == [["RSSM", "0.80 ▲=", "0.50 ▲▼"], ["Transformer, full window", "0.90 ▲==", "0.80 ▲=▲"]]
    assert "5 seeds" in t.caption and "0.30" in t.caption and _width(str(t)) <= 110
