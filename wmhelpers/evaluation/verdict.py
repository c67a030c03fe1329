"""The conclusion, written by the run: computed facts -> one Markdown paragraph.

Every number and every verdict word in the notebook's conclusion comes from here, so a re-run on
another machine (another CPU, a GPU, smoke mode) states what THAT run measured.

Decision rules (one place, so the words always mean the same thing):
- "leads" / "cannot be told apart": the seed-by-seed difference Transformer - RSSM at horizon h,
  95 % t-interval over the training seeds (stats.interval). If it excludes 0, the larger one
  leads; otherwise the two cannot be told apart, however narrow one run's window CI is.
- "beats" / "falls below" / "cannot be told apart from" a baseline: the same rule on the seed-by-
  seed margin model - baseline (latent-hold is each model's own; copy-last and context-mean are
  model-free).
- With fewer than 2 seeds there is no training spread: the verdict then uses the single run's
  paired window CI and says so ("on these windows, for this one trained pair").
- A reward head "beats" the constant predictor when its validation reward loss is below the MSE
  of predicting 0 on the same validation windows.
"""

from __future__ import annotations

import math

import numpy as np

from ..device import same_device
from . import seeds as seedstats
from .rollouts import paired_margin

BASELINES = (("latent_hold", "latent-hold"), ("context_mean", "context-mean"), ("copy_last", "copy-last"))


def _decide(mean: float, ci: float, pos: str, neg: str, tie: str) -> str:
    if math.isnan(ci):
        return tie
    if mean - ci > 0:
        return pos
    if mean + ci < 0:
        return neg
    return tie


def reward_constant_mse(rewards) -> float:
    """MSE of predicting 0 at every step: the mean squared reward (random Boxing: a reward on ~3 % of
    steps). A reward head that cannot beat this has learnt nothing about rewards."""
    r = np.asarray(rewards, dtype=float)
    return float(np.mean(r ** 2))


def decide_facts(results: dict, histories: dict, cfg, seeds_doc: dict | None = None,
                 reward_constant: float | None = None, device: str | None = None,
                 horizons=(1, 3, 5, 10), a: str = "RSSM", b: str = "Transformer") -> dict:
    """Everything the conclusion says, as numbers and verdict words.

    results/histories: this run's evaluate_rollouts output and training histories. seeds_doc: the
    seeds file (seeds.load_seeds) or None. The seeds file's spread is used only when its config
    equals this run's (seeds.config_differences); this run joins it as its own training seed."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    differences = seedstats.config_differences(seeds_doc, cfg) if seeds_doc else ["no seeds file"]
    borrowed = seeds_doc if not differences else None
    runs = seedstats.seed_runs(borrowed, seedstats.seed_record(results, histories), cfg.train_seed)
    n = len(runs)
    facts = {"horizons": horizons, "models": [a, b], "n_seeds": n, "seeds": sorted(runs, key=int),
             "this_seed": str(cfg.train_seed),
             "seed_spread": n >= 2, "seeds_not_used_because": differences if seeds_doc and differences else None,
             "budget": {"train_steps": cfg.train_steps, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len,
                        "lr": cfg.lr, "preset": cfg.preset},
             "device": device, "lead": {}, "baselines": {a: {}, b: {}}}

    def rule(x: tuple, y: tuple, metric: str) -> dict:
        """t-interval over seeds of x - y, or this run's paired window CI when there is one seed."""
        if n >= 2:
            s = seedstats.spread(runs, x, y, metric)
            return {h: {"mean": s["mean"][h - 1], "ci": s["ci"][h - 1], "basis": "seeds"} for h in horizons}
        w = paired_margin(results, x, y, metric)
        return {h: {"mean": w["mean"][h - 1], "ci": w["ci"][h - 1], "basis": "windows"} for h in horizons}

    for metric in ("whole", "changed"):
        lead = rule((b, "mode"), (a, "mode"), metric)
        for h, d in lead.items():
            d["verdict"] = _decide(d["mean"], d["ci"], "leads", "leads", "cannot be told apart")
            d["leader"] = (b if d["mean"] > 0 else a) if d["verdict"] == "leads" else None
        facts["lead"][metric] = lead
        for name in (a, b):
            for key, _ in BASELINES:
                other = (name, key) if key == "latent_hold" else ("baselines", key)
                m = rule((name, "mode"), other, metric)
                for d in m.values():
                    d["verdict"] = _decide(d["mean"], d["ci"], "beats", "falls below", "cannot be told apart from")
                facts["baselines"][name].setdefault(key, {})[metric] = m

    # this run's window CI, labelled for what it is (window noise for one trained pair)
    facts["window_ci"] = {m: {h: {"mean": w["mean"][h - 1], "ci": w["ci"][h - 1]} for h in horizons}
                          for m in ("whole", "changed")
                          for w in [paired_margin(results, (b, "mode"), (a, "mode"), m)]}

    # reward heads against predicting 0
    facts["reward"] = {"constant": reward_constant, "loss": {}, "verdict": {}}
    for name in (a, b):
        loss = histories[name].get("val", {}).get("reward_loss", [float("nan")])[-1]
        facts["reward"]["loss"][name] = loss
        if reward_constant is not None:
            facts["reward"]["verdict"][name] = "beats" if loss < reward_constant else "does not beat"

    # cost: wall clock only between runs on the same device
    ra, rb = histories[a].get("device_record"), histories[b].get("device_record")
    same = same_device(ra, rb)
    facts["cost"] = {"same_device": same, "devices": {a: histories[a].get("device"), b: histories[b].get("device")},
                     "ms_per_step": {a: histories[a].get("ms_per_step"), b: histories[b].get("ms_per_step")},
                     "ratio": histories[b]["ms_per_step"] / histories[a]["ms_per_step"] if same else None}
    return facts


# ---- facts -> words -----------------------------------------------------------------------------------
def _pm(d: dict) -> str:
    ci = "" if math.isnan(d["ci"]) else f" ± {d['ci']:.2f}"
    return f"{d['mean']:+.2f}{ci} dB"


def _hs(hs) -> str:
    hs = list(hs)
    return "h = " + (", ".join(str(h) for h in hs[:-1]) + " and " + str(hs[-1]) if len(hs) > 1 else str(hs[0]))


def _lead_sentence(lead: dict, metric_words: str, a: str, b: str) -> str:
    parts = []
    for h, d in lead.items():
        if d["verdict"] == "leads":
            diff = dict(d, mean=abs(d["mean"]))
            parts.append(f"at h = {h} the {d['leader']} leads by {_pm(diff)}")
    ties = [h for h, d in lead.items() if d["verdict"] != "leads"]
    if ties:
        worst = max((lead[h] for h in ties), key=lambda d: abs(d["mean"]))
        parts.append(f"at {_hs(ties)} the two cannot be told apart (largest difference there: "
                     f"{b} − {a} = {_pm(worst)})")
    return f"On {metric_words}, " + "; ".join(parts) + "."


def _baseline_sentence(name: str, facts: dict) -> str:
    out = []
    for key, label in BASELINES:
        for metric, words in (("changed", "changed pixels"), ("whole", "the whole frame")):
            m = facts["baselines"][name][key][metric]
            groups: dict[str, list] = {}
            for h, d in m.items():
                groups.setdefault(d["verdict"], []).append(h)
            own = "its own latent-hold" if key == "latent_hold" else label
            bits = []
            for verdict, hs in groups.items():
                last = m[hs[-1]]
                bits.append(f"{verdict} {own} at {_hs(hs)} (h = {hs[-1]}: {_pm(last)})")
            out.append(f"on {words} it " + ", and ".join(bits))
    return f"The **{name}**: " + "; ".join(out) + "."


def conclusion_markdown(facts: dict) -> str:
    """The comparison paragraph, every number and verdict word taken from `facts`."""
    a, b = facts["models"]
    bud = facts["budget"]
    n = facts["n_seeds"]
    if facts["seed_spread"]:
        basis = (f"Verdicts below are decided across **{n} training seeds** ({', '.join(facts['seeds'])}; this "
                 f"notebook's run is seed {facts['this_seed']}) by a 95 % "
                 f"t-interval over seeds of the seed-by-seed difference: a gap inside the training noise is "
                 f"reported as \"cannot be told apart\".")
    else:
        why = ("the seeds file was made with another configuration ("
               + ", ".join(facts["seeds_not_used_because"][:4]) + ")") if facts["seeds_not_used_because"] else \
            "there is no seeds file for this configuration"
        basis = (f"**This budget has no seed spread** ({why}): the verdicts below rest on one trained pair and "
                 f"its paired window CI, which measures window noise only, not training noise.")
    lines = [f"**What we observed** ({bud['preset']} budget: {bud['train_steps']:,} gradient steps of "
             f"{bud['batch_size']}×{bud['seq_len']}, lr {bud['lr']:g}, for both models"
             + (f"; device {facts['device']}" if facts.get("device") else "") + "). " + basis, ""]
    lines.append("* " + _lead_sentence(facts["lead"]["whole"], "the whole frame", a, b))
    lines.append("* " + _lead_sentence(facts["lead"]["changed"], "changed pixels (where the boxers move)", a, b))
    for name in (a, b):
        lines.append("* " + _baseline_sentence(name, facts))
    lines.append("* What shows motion is the margin on **changed pixels** over latent-hold and context-mean; a "
                 "model that only blurs can sit above latent-hold on the whole frame.")
    r = facts["reward"]
    if r["constant"] is not None:
        lines.append("* Reward heads: predicting 0 at every step scores a validation MSE of "
                     f"{r['constant']:.4f}; " + "; ".join(
                         f"the {name}'s head ({r['loss'][name]:.4f}) {r['verdict'][name]} it" for name in (a, b)) + ".")
    c = facts["cost"]
    if c["same_device"]:
        lines.append(f"* Cost, on one device ({c['devices'][b]}): a training step took {c['ms_per_step'][b]:.0f} ms "
                     f"for the {b} and {c['ms_per_step'][a]:.0f} ms for the {a} (ratio {c['ratio']:.2f}).")
    else:
        lines.append(f"* Cost: the {a} was trained on {c['devices'][a]} and the {b} on {c['devices'][b]}, so their "
                     "wall clocks are not compared; per gradient step the budgets are identical.")
    return "\n".join(lines)


def show_conclusion(facts: dict):
    """Display the paragraph as Markdown in a notebook (plain text elsewhere)."""
    text = conclusion_markdown(facts)
    try:
        from IPython.display import Markdown, display

        display(Markdown(text))
    except ImportError:  # pragma: no cover - outside IPython
        print(text)
    return None
