"""Section 6 across seeds (wmhelpers.evaluation.memory_verdict) and its figures."""

from __future__ import annotations

import numpy as np
import pytest

from wmhelpers.evaluation import memory_verdict as mv
from wmhelpers.evaluation import seeds
from wmhelpers.notebook_tools import plots

GAPS = [2, 20]


def _run(seed: int, rssm_far: float, full_far: float, main_far: float, config=None) -> dict:
    """A cue-recall run in run_cue_recall's form: three curve points, the last the result."""
    noise = 0.01 * (seed - 2)

    def model(far, ctl=0.9):
        final = [0.9 + noise, far + noise]
        return {"step": [0, 50, 100], "memory": [[0.1, 0.1], [0.5, far / 2], final],
                "control": [[0.1, 0.1], [0.5, 0.5], [ctl + noise, ctl + noise]]}

    loads = {load: {"metric": metric, "chance": 0.125, "gaps": GAPS,
                    "models": {mv.RSSM: model(rssm_far), mv.FULL: model(full_far), mv.MAIN: model(main_far)}}
             for load, metric in (("identify", "identified"), ("copy", "match"))}
    return {"config": config or {"gaps": GAPS}, "train_seed": seed, "loads": loads}


def _doc(runs: dict, config=None) -> dict:
    return {"memory": {"config": config or {"gaps": GAPS}, "runs": runs}}


def test_this_run_joins_the_seeds_file_as_its_own_seed():
    shipped = {str(s): _run(s, 0.5, 0.8, 0.13) for s in range(5)}
    mine = _run(0, 0.9, 0.9, 0.9)
    runs = seeds.memory_runs(mine, _doc(shipped))
    assert list(runs) == ["0", "1", "2", "3", "4"] and runs["0"] is mine
    assert list(seeds.memory_runs(mine, _doc(shipped, config={"gaps": [1]}))) == ["0"]  # another task: not borrowed
    assert list(seeds.memory_runs(mine, None)) == ["0"]


def test_directions_follow_the_per_seed_differences():
    runs = {str(s): _run(s, 0.5, 0.8, 0.13) for s in range(5)}
    s = mv.summary(runs)["copy"]
    full, main, rssm = (s["conditions"][c] for c in (mv.FULL, mv.MAIN, mv.RSSM))
    assert [d["direction"] for d in full["minus_rssm"]] == [0, 1]  # equal at gap 2, attention ahead at 20
    assert full["minus_rssm"][1]["mean"] == pytest.approx(0.3) and full["minus_rssm"][1]["n"] == 5
    assert [d["direction"] for d in main["minus_chance"]] == [1, 0]  # at chance beyond the window
    assert [d["direction"] for d in rssm["minus_control"]] == [0, -1]
    assert rssm["memory"][1]["values"] == pytest.approx([0.5 + 0.01 * (k - 2) for k in range(5)])

    facts = mv.conclusion_facts(runs, window_steps=16)["copy"]
    assert facts["beyond"] == [20] and facts["n_seeds"] == 5
    assert facts["backbone"]["direction"] == 1 and facts["window"]["direction"] == 1
    assert "rssm_lost" not in facts
    assert all(d["direction"] == 1 for d in facts["still_rising"].values())  # the curves still climb
    flipped = mv.conclusion_facts({str(s): _run(s, 0.85, 0.5, 0.5) for s in range(5)}, 16)["copy"]
    assert flipped["backbone"]["direction"] == -1 and flipped["window"]["direction"] == 0


def test_memory_figures_show_every_seed_and_the_mean():
    runs = {str(s): _run(s, 0.5, 0.8, 0.13) for s in range(3)}
    fig = plots.memory_recall(runs, window_steps=16)
    assert len(fig.axes) == 2 and fig.get_size_inches()[0] <= 10
    ax = fig.axes[1]
    points = [c for c in ax.collections if len(c.get_offsets()) == 3 * len(GAPS)]
    assert len(points) == 3  # each condition's per-seed points
    means = [line for line in ax.lines if line.get_label() == mv.RSSM]
    assert np.allclose(means[0].get_ydata(), [0.89, 0.49])  # seeds 0-2 add -0.02, -0.01, 0
    fig = plots.memory_learning(runs, window_steps=16)
    ax = fig.axes[0]
    thick = [line for line in ax.lines if line.get_label() == mv.FULL][0]
    assert list(thick.get_xdata()) == [0, 50, 100] and thick.get_ydata()[-1] == pytest.approx(0.79)
    assert sum(line.get_lw() < 1 for line in ax.lines) == 3 * 3  # one thin curve per seed and condition


def test_the_longer_runs_are_read_from_their_own_section():
    doc = _doc({"0": _run(0, 0.5, 0.8, 0.13)}) | {"memory_long": {"config": {}, "runs": {
        "3": _run(3, 0.9, 0.8, 0.5), "1": _run(1, 0.9, 0.8, 0.5)}}}
    assert list(seeds.memory_runs(None, doc, "memory_long")) == ["1", "3"]
    assert seeds.memory_runs(None, None, "memory_long") == {}
    fig = plots.memory_learning(seeds.memory_runs(None, doc, "memory_long"), window_steps=16, budget={"copy": 50})
    assert [line.get_xdata()[0] for line in fig.axes[1].lines if line.get_label() == "this notebook's budget"] == [50]
