"""Section 6 decided across training seeds, by the notebook's one rule (stats.over_seeds).

Over the cue-recall runs (seeds.memory_runs: this run as its own seed), `summary` gives intervals
per load, condition and gap; `conclusion_facts` keeps the few numbers the
conclusion needs; `markov_facts` reads the Markov check. Every verdict is a direction (-1/0/+1,
stats.decide); the reader chooses the words.
"""

from __future__ import annotations

import numpy as np

from .stats import decide, over_seeds

RSSM, FULL, MAIN = "RSSM", "Transformer, full window", "Transformer, main window"


def final_scores(runs: dict, load: str, cond: str, part: str = "memory") -> np.ndarray:
    """[seeds, gaps]: the score after training."""
    return np.array([r["loads"][load]["models"][cond][part][-1] for r in runs.values()], dtype=float)


def _rule(values) -> dict:
    return {"values": [float(v) for v in values]} | over_seeds(values)


def summary(runs: dict) -> dict:
    """{load: {"metric", "gaps", "chance" (mean over seeds: the same sequences give the same value),
    "conditions": {cond: {"memory", "control", "minus_chance", "minus_control", "minus_rssm"
    (Transformers only)}}}}: each a list over gaps of {"values" (per seed),
    "mean", "ci" (95 % t half-width), "n", "direction"}.

    minus_chance: memory - chance; minus_control: memory - control (below 0: the cue was lost, not
    the drawing); minus_rssm: this Transformer - the RSSM."""
    first = next(iter(runs.values()))
    out = {}
    for load, info in first["loads"].items():
        chance = np.array([r["loads"][load]["chance"] for r in runs.values()])[:, None]
        rssm = final_scores(runs, load, RSSM)
        conds = {}
        for cond in info["models"]:
            mem, ctl = final_scores(runs, load, cond), final_scores(runs, load, cond, "control")
            parts = {"memory": mem, "control": ctl, "minus_chance": mem - chance, "minus_control": mem - ctl}
            if cond != RSSM:
                parts["minus_rssm"] = mem - rssm
            conds[cond] = {k: [_rule(v[:, i]) for i in range(v.shape[1])] for k, v in parts.items()}
        out[load] = {"metric": info["metric"], "gaps": info["gaps"], "chance": float(chance.mean()),
                     "conditions": conds}
    return out


def conclusion_facts(runs: dict, window_steps: int) -> dict:
    """The facts the conclusion needs, per load, over the gaps beyond the main window (gap >
    window_steps), each seed's score averaged over them, decided across seeds ({"values", "mean",
    "ci", "n", "direction"}): "backbone" full-window Transformer - RSSM, "window" full - main window,
    "still_rising" per learner (last curve point - the one before; +1: not at its plateau); and
    "metric", "beyond", "n_seeds", "chance"."""
    out = {}
    first = next(iter(runs.values()))
    for load, info in first["loads"].items():
        beyond = [i for i, g in enumerate(info["gaps"]) if g > window_steps]
        def far(cond, part="memory"):
            return final_scores(runs, load, cond, part)[:, beyond].mean(1)

        def rise(cond):
            curves = [r["loads"][load]["models"][cond]["memory"] for r in runs.values()]
            return np.array([np.mean(c[-1]) - np.mean(c[-2]) for c in curves])

        out[load] = {"metric": info["metric"], "beyond": [info["gaps"][i] for i in beyond], "n_seeds": len(runs),
                     "chance": float(np.mean([r["loads"][load]["chance"] for r in runs.values()])),
                     "backbone": _rule(far(FULL) - far(RSSM)), "window": _rule(far(FULL) - far(MAIN)),
                     "still_rising": {c: _rule(rise(c)) for c in info["models"]}}
    return out


def markov_facts(markov: dict) -> dict:
    """What the trained models gain (dB, PSNR averaged over horizons) from frames older than K:
    {"ks" (the K below the longest), "longest", "models": {name: {"gain", "ci", "upper", "direction"}}},
    lists over ks. gain = mean over windows of PSNR(longest K) - PSNR(K), ci its 95 % t half-width,
    upper = gain + ci (the claim: "gains at most `upper` dB from frames older than K"), direction
    of the gain by stats.decide (+1: the older frames help, measurably)."""
    ks = markov["ks"][:-1]
    models = {}
    for name, d in markov["delta"].items():
        gain, ci = -np.asarray(d["mean"][:-1]), np.asarray(d["ci"][:-1])
        models[name] = {"gain": gain.tolist(), "ci": ci.tolist(), "upper": (gain + ci).tolist(),
                        "direction": [decide(g, c) for g, c in zip(gain, ci)]}
    return {"ks": ks, "longest": markov["ks"][-1], "models": models}
