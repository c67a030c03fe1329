"""Section 6 decided across training seeds, by the notebook's one rule (stats.over_seeds).

`merged_runs` joins this run to the seeds file's cue-recall runs as its own seed; `summary` turns
them into intervals per load, condition and gap; `conclusion_facts` keeps the few numbers the
conclusion needs; `markov_facts` reads the Markov check. Every verdict is a direction (-1/0/+1,
stats.decide); the reader chooses the words.
"""

from __future__ import annotations

import numpy as np

from .seeds import seed_runs
from .stats import decide, over_seeds

RSSM, FULL, MAIN = "RSSM", "Transformer, full window", "Transformer, main window"


def merged_runs(this_run: dict, seeds_doc: dict | None) -> dict:
    """{seed: cue-recall run}: the seeds file's memory runs when they were made with this run's
    cue-recall configuration (else none), with this run replacing the file's entry for its own seed.
    seeds_doc: the seeds file, or None where it was made for another experiment configuration
    (verdict.usable_seeds gives that document)."""
    section = (seeds_doc or {}).get("memory") or {}
    if section.get("config") != this_run["config"]:
        section = {}
    return seed_runs(None, this_run, this_run["train_seed"], section={"runs": section.get("runs", {})})


def long_runs(seeds_doc: dict | None) -> dict:
    """{seed: run} of the seeds file's cue-recall runs at the longer budget ("memory_long"), or {}."""
    return seed_runs(None, section={"runs": ((seeds_doc or {}).get("memory_long") or {}).get("runs", {})})


def final_scores(runs: dict, load: str, cond: str, part: str = "memory") -> np.ndarray:
    """[seeds, gaps]: the score after training."""
    return np.array([r["loads"][load]["models"][cond][part][-1] for r in runs.values()], dtype=float)


def _rule(values) -> dict:
    return {"values": [float(v) for v in values]} | over_seeds(values)


def summary(runs: dict) -> dict:
    """{load: {"metric", "gaps", "chance" (mean over seeds: the same sequences give the same value),
    "conditions": {cond: {"memory", "control", "minus_chance", "minus_control", "minus_rssm"
    (Transformers only)}}, "full_minus_main"}}: each a list over gaps of {"values" (per seed),
    "mean", "ci" (95 % t half-width), "n", "direction"}.

    minus_chance: memory - chance; minus_control: memory - control (below 0: the cue was lost, not
    the drawing); minus_rssm: this Transformer - the RSSM; full_minus_main: what the window costs."""
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
        window = final_scores(runs, load, FULL) - final_scores(runs, load, MAIN)
        out[load] = {"metric": info["metric"], "gaps": info["gaps"], "chance": float(chance.mean()),
                     "conditions": conds, "full_minus_main": [_rule(window[:, i]) for i in range(window.shape[1])]}
    return out


def conclusion_facts(runs: dict, window_steps: int) -> dict:
    """The few facts the conclusion needs, per load, over the gaps beyond the main window
    (gap > window_steps), each per seed averaged over those gaps and decided across seeds:

        {load: {"metric", "beyond" (those gaps), "n_seeds", "chance",
                "recall": {cond: mean score},
                "backbone": Transformer (full window) - RSSM     (+1: attention recalls more, -1: the GRU)
                "window":   Transformer full - main window      (+1: the short window costs recall)
                "rssm_lost": RSSM memory - control              (-1: the fixed-size state loses part of the cue)
                "main_vs_chance": Transformer (main window) - chance  (0: at chance beyond the window)
                "still_rising": {cond: last curve point - the one before, mean over all gaps}
                                                                 (+1: not at its plateau yet)}}
    Each of backbone/window/... is {"values", "mean", "ci", "n", "direction"}. The window explains
    the gap beyond it where "window" has a direction and "backbone" does not, and vice versa."""
    out = {}
    first = next(iter(runs.values()))
    for load, info in first["loads"].items():
        beyond = [i for i, g in enumerate(info["gaps"]) if g > window_steps]
        chance = np.array([r["loads"][load]["chance"] for r in runs.values()])

        def far(cond, part="memory"):
            return final_scores(runs, load, cond, part)[:, beyond].mean(1)

        def rise(cond):
            curves = [r["loads"][load]["models"][cond]["memory"] for r in runs.values()]
            return np.array([np.mean(c[-1]) - np.mean(c[-2]) for c in curves])

        out[load] = {"metric": info["metric"], "beyond": [info["gaps"][i] for i in beyond], "n_seeds": len(runs),
                     "chance": float(chance.mean()), "recall": {c: float(far(c).mean()) for c in info["models"]},
                     "backbone": _rule(far(FULL) - far(RSSM)), "window": _rule(far(FULL) - far(MAIN)),
                     "rssm_lost": _rule(far(RSSM) - far(RSSM, "control")),
                     "main_vs_chance": _rule(far(MAIN) - chance),
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
