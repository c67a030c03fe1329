"""The conclusion, written by the run: facts computed once from the merged seeds -> one paragraph.

One rule decides every comparison (stats.decide on a 95 % t-interval over training seeds, or over
this run's windows when there is no seed spread): +1 when the interval lies wholly above 0, -1
wholly below, 0 when it holds 0 ("cannot be told apart"). The facts keep that direction; WORDS
turns it into words, and nothing compares words. Compared: Transformer - RSSM per horizon (lead),
each model - each baseline, the reward heads against constants, the 2-layer ablation; Sections 5
and 6 add the cost and the memory facts.
"""

from __future__ import annotations

import numpy as np

from ..device import same_device
from . import seeds as seedstats
from .rollouts import paired_margin
from .stats import decide, over_seeds

BASELINES = (("latent_hold", "latent-hold"), ("context_mean", "context-mean"), ("copy_last", "copy-last"))
METRIC_WORDS = {"whole": "the whole frame", "changed": "changed pixels"}

# direction of a difference -> words, per kind of comparison (the only place verdict words live)
WORDS = {
    "lead": {1: "{b} leads", -1: "{a} leads", 0: "cannot be told apart"},
    "baseline": {1: "beats", -1: "falls below", 0: "cannot be told apart from"},
    "mark": {1: "▲", -1: "▼", 0: "="},
    "backbone": {1: "attention recalls more than the GRU", -1: "the GRU recalls more than attention",
                 0: "the GRU and attention cannot be told apart"},
    "window": {1: "the short window costs recall", -1: "the short window helps",
               0: "the short window costs nothing measurable"},
}


def reward_constant_mse(rewards) -> float:
    """MSE of always predicting 0 on these rewards (mean of r^2): the bar a reward head must clear."""
    r = np.asarray(rewards, dtype=float)
    return float(np.mean(r ** 2))


# ---- facts ---------------------------------------------------------------------------------------------
def _rule(merged: dict, results: dict, x: tuple, y: tuple, metric: str, horizons) -> dict:
    """x - y per horizon: over seeds when there are 2 or more, else this run's paired window CI."""
    runs = merged["runs"]
    if len(runs) >= 2:
        per_seed = seedstats.per_seed(runs, x, y, metric)
        return {h: over_seeds(per_seed[:, h - 1]) | {"basis": "seeds"} for h in horizons}
    w = paired_margin(results, x, y, metric)  # one trained pair: window noise only, labelled so
    return {h: {"mean": w["mean"][h - 1], "ci": w["ci"][h - 1], "n": 1, "basis": "windows",
                "direction": decide(w["mean"][h - 1], w["ci"][h - 1])} for h in horizons}


def reward_facts(runs: dict, names) -> dict:
    """Reward heads across seeds: AUPRC against the event rate, MSE against predicting 0 and the mean."""
    rows = seedstats.reward_rows(runs, names)
    out = {"models": {}}
    for name in names:
        r = rows[name]
        if not r["seeds"]:
            out["models"][name] = {"seeds": []}
            continue
        out["models"][name] = {
            "seeds": r["seeds"], "auprc": float(np.mean(r["auprc"])), "event_rate": float(np.mean(r["event_rate"])),
            "auprc_vs_rate": over_seeds(np.subtract(r["auprc"], r["event_rate"])),
            "mse_vs_zero": over_seeds(np.subtract(r["mse"], r["mse_zero"])),
            "mse_vs_mean": over_seeds(np.subtract(r["mse"], r["mse_mean"]))}
    return out


def ablation_facts(merged: dict, variant: str = "tf2", a: str = "RSSM", b: str = "Transformer", h: int = 1):
    """The variant's Transformer against the same seeds' RSSM at horizon h, by the same rule."""
    var = seedstats.variant_runs(merged["borrowed"], variant, merged["runs"])
    if len(var) < 2:
        return None
    lead = {m: over_seeds(seedstats.per_seed(var, (b, "mode"), (a, "mode"), m)[:, h - 1]) for m in METRIC_WORDS}
    return {"variant": variant, "overrides": merged["borrowed"]["variants"][variant].get("overrides", {}), "h": h,
            "seeds": list(var), "lead": lead}


def pair_facts(results: dict, merged: dict, cfg, horizons=(1, 3, 5, 10), a: str = "RSSM", b: str = "Transformer",
               device: str | None = None) -> dict:
    """Section 4's facts, computed once from the merged seeds (seeds.merge): who imagines better at
    each horizon, each model against each baseline, the reconstruction ceilings that bound a lead,
    the reward heads, and the 2-layer ablation."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    runs = merged["runs"]
    facts = {"horizons": horizons, "models": [a, b], "n_seeds": len(runs), "seeds": list(runs),
             "this_seed": str(cfg.train_seed), "replaced_shipped": merged["shipped"] is not None,
             "seed_spread": len(runs) >= 2, "seeds_not_used_because": merged["differences"] or None,
             "precision": cfg.precision, "device": device,
             "budget": {"train_steps": cfg.train_steps, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len,
                        "lr": cfg.lr, "preset": cfg.preset},
             "lead": {m: _rule(merged, results, (b, "mode"), (a, "mode"), m, horizons) for m in METRIC_WORDS},
             "ceiling": {m: _rule(merged, results, (b, "recon_ceiling"), (a, "recon_ceiling"), m, horizons)
                         for m in METRIC_WORDS},
             "baselines": {}}
    for name in (a, b):
        facts["baselines"][name] = {
            key: {m: _rule(merged, results, (name, "mode"),
                           (name, key) if key == "latent_hold" else ("baselines", key), m, horizons)
                  for m in METRIC_WORDS} for key, _ in BASELINES}
    facts["reward"] = reward_facts(runs, (a, b))
    facts["ablation"] = ablation_facts(merged, "tf2", a, b) if len(runs) >= 2 else None
    return facts


def cost_facts(histories: dict, clock: dict, projected: bool, a: str = "RSSM", b: str = "Transformer") -> dict:
    """Section 5's cost: ms per training step on ONE device (the RSSM's projected onto it from a burst
    when it was trained elsewhere), and their ratio; no ratio across devices."""
    same = same_device(histories[a].get("device_record"), histories[b].get("device_record"))
    ms = {name: clock[name].get("ms_per_step") for name in (a, b)}
    return {"same_device": same, "projected": projected, "device": clock[b].get("device"), "ms_per_step": ms,
            "ratio": ms[b] / ms[a] if (same or projected) and ms[a] else None}


# ---- facts -> words -----------------------------------------------------------------------------------
def _pm(d: dict, unit: str = " dB") -> str:
    ci = "" if d["ci"] != d["ci"] else f" ± {d['ci']:.2f}"  # NaN: one value, no interval
    return f"{abs(d['mean']):.2f}{ci}{unit}"


def _hs(hs) -> str:
    hs = [str(h) for h in hs]
    return "h = " + (", ".join(hs[:-1]) + " and " + hs[-1] if len(hs) > 1 else hs[0])


def _basis(f: dict) -> str:
    if f["seed_spread"]:
        return f"Over {f['n_seeds']} training seeds (this run is seed {f['this_seed']}), "
    why = ", ".join((f["seeds_not_used_because"] or ["no seeds file"])[:2])
    return f"For this one trained pair (no seed spread: {why}), "


def quality_sentence(f: dict) -> str:
    """Who imagines better where, with the size of each lead; every other horizon is a tie."""
    a, b = f["models"]
    parts = []
    for who in (a, b):
        bits = []
        for metric, words in METRIC_WORDS.items():
            won = [h for h, d in f["lead"][metric].items() if {1: b, -1: a}.get(d["direction"]) == who]
            if won:
                at = f" at h = {won[0]}" if len(won) > 1 else ""
                bits.append(f"at {_hs(won)} on {words} (by {_pm(f['lead'][metric][won[0]])}{at})")
        if bits:
            parts.append(f"the {who} imagines better " + " and ".join(bits))
    if not parts:
        worst = max((d for m in f["lead"].values() for d in m.values()), key=lambda d: abs(d["mean"]))
        return _basis(f) + (f"neither world model imagines better at any horizon scored (the largest difference "
                            f"is {_pm(worst)}, inside the training noise).")
    return _basis(f) + "; ".join(parts) + "; at every other horizon the two cannot be told apart."


def motion_clause(f: dict) -> str:
    """Did each model learn motion: its changed-pixel margin over its own latent-hold."""
    beat = {name: [h for h, d in f["baselines"][name]["latent_hold"]["changed"].items() if d["direction"] > 0]
            for name in f["models"]}
    yes = [name for name, hs in beat.items() if hs]
    if not yes:
        return "Neither beats its own latent-hold on changed pixels, so neither shows learned motion."
    who = "Both" if len(yes) == len(beat) else f"Only the {yes[0]}"
    hs = sorted(set.intersection(*(set(beat[n]) for n in yes)))
    return (f"{who} learned motion: on changed pixels {'each beats its' if len(yes) > 1 else 'it beats its'} own "
            f"latent-hold{f' at {_hs(hs)}' if hs else ''}.")


def markov_clause(mk: dict | None) -> str:
    """Section 6's Markov check (memory_verdict.markov_facts): the most either model loses, at the
    upper end of its 95 % band, when it sees fewer real frames than the longest context."""
    if not mk:
        return ""
    worst = " and ".join(f"{max(m['upper']):.2f} dB ({name})" for name, m in mk["models"].items())
    return (f"With fewer than {mk['longest']} real context frames, these trained models lose at most {worst}: "
            "they make little use of the older past.")


def memory_clause(memory: dict | None) -> str:
    """Section 6's cue recall beyond the main window (memory_verdict.conclusion_facts per load, and
    the budget they were read at): the backbone's part and the window's part, each decided across seeds."""
    if not memory:
        return ""
    loads = memory["loads"]
    f0 = next(iter(loads.values()))
    rising = any(d["direction"] > 0 for f in loads.values() for d in f["still_rising"].values())
    task = {"identify": "to identify a cue", "copy": "to copy a whole frame"}
    said = {}  # (backbone, window) directions -> the loads that share them, said once
    for load, f in loads.items():
        said.setdefault((f["backbone"]["direction"], f["window"]["direction"]), []).append((load, f))
    bits = [" or ".join(task.get(load, load) for load, _ in group) + f", {WORDS['backbone'][b]} ("
            + "; ".join(_pm(f["backbone"], "") for _, f in group) + f") and {WORDS['window'][w]}"
            for (b, w), group in said.items()]
    return (f"Past the main window (gaps {', '.join(map(str, f0['beyond']))}; {f0['n_seeds']} seeds, "
            f"{memory['budget']}{', some curves still rising' if rising else ''}), with full-window attention: "
            + "; ".join(bits) + ".")


def section6_facts(markov: dict | None, loads: dict | None, budget: str) -> dict:
    """The conclusion's Section 6 facts: the Markov check, the cue recall per load and its budget."""
    return {"markov": markov, "memory": {"loads": loads, "budget": budget} if loads else None}


def cost_clause(c: dict | None, a: str = "RSSM", b: str = "Transformer") -> str:
    if not c:
        return ""
    if c["ratio"] is None:
        return "The two were trained on different devices, so their wall clocks are not compared."
    return (f"On {c['device']}, a {b} training step costs {c['ratio']:.2f}× the {a}'s"
            + (f" (the {a}'s projected)" if c["projected"] else "") + ".")


def synthesis(f: dict) -> str:
    """The sentence that draws the verdicts together, chosen by their directions."""
    lead = {False: set(), True: set()}  # directions before / from h = 5
    for m in f["lead"].values():
        for h, d in m.items():
            lead[h >= 5].add(d["direction"])
    game = ("the backbone matters beyond the first steps" if lead[True] != {0} else
            "the backbone makes a difference in the first steps only" if lead[False] != {0} else
            "the backbone makes no difference we can measure")
    loads = ((f.get("memory") or {}).get("loads") or {}).values()
    seen = {k: {x[k]["direction"] for x in loads} for k in ("backbone", "window")}
    memory = ("attention recalls more than the GRU" if 1 in seen["backbone"] else
              "the GRU recalls more than attention" if -1 in seen["backbone"] else
              "what decides is the window, not the backbone" if 1 in seen["window"] else
              "neither the backbone nor the window decides")
    return (f"In short: on short windows of a reactive game {game}"
            + (f"; when a cue must be carried past the window, {memory}." if loads else "."))


def conclusion_markdown(f: dict) -> str:
    """The one comparison paragraph (~200 words), every number and word taken from the facts."""
    a, b = f["models"]
    parts = [quality_sentence(f), motion_clause(f), markov_clause(f.get("markov")),
             memory_clause(f.get("memory")), cost_clause(f.get("cost"), a, b), synthesis(f)]
    return " ".join(p for p in parts if p)


class Conclusion:
    """The paragraph as a display object: Markdown in Jupyter, the same text as text/plain, so a
    terminal, `nbconvert --to script` or a diff of the notebook reads the paragraph, not a repr."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def show_conclusion(facts: dict) -> Conclusion:
    """The conclusion of `facts`, displayed as the cell's result (Markdown, with its text as plain text)."""
    return Conclusion(conclusion_markdown(facts))
