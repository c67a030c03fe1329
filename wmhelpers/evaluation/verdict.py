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
- Reward heads, across seeds by the same rule: AUPRC minus the event rate (a head that knows
  nothing scores the event rate), and the head's MSE minus that of predicting 0 / the mean.
- The 2-layer ablation and the cue-recall experiment: the same rule on their own per-seed
  differences (Transformer - RSSM), with this run joining as its own seed.
"""

from __future__ import annotations

import math

import numpy as np

from ..device import same_device
from . import seeds as seedstats
from .rollouts import paired_margin
from .stats import decide, over_seeds
from .tables import BASELINE_NAMES as BASELINES

SMALL_DB = 0.5  # a PSNR lead below this (11 % less squared error) is called too small to see
MARKOV_FLAT_DB = 0.2  # the Markov check calls PSNR "flat" beyond K = 2 when no horizon moves more than this


def reward_constant_mse(rewards) -> float:
    """MSE of predicting 0 at every step: the mean squared reward (random Boxing: a reward on ~3 % of
    steps). A reward head that cannot beat this has learnt nothing about rewards."""
    r = np.asarray(rewards, dtype=float)
    return float(np.mean(r ** 2))


def usable_seeds(seeds_doc: dict | None, cfg) -> tuple[dict | None, list]:
    """(the seeds file if its configuration is this run's, else None; the fields that differ)."""
    if not seeds_doc:
        return None, ["no seeds file"]
    differences = seedstats.config_differences(seeds_doc, cfg)
    return (None if differences else seeds_doc), differences


def this_run_seeds(results: dict, histories: dict, cfg, seeds_doc: dict | None = None) -> dict:
    """{seed: run} the verdict is decided over: the seeds file (when its configuration matches)
    with this run as its own seed, replacing the file's entry for that seed."""
    borrowed, _ = usable_seeds(seeds_doc, cfg)
    return seedstats.seed_runs(borrowed, seedstats.seed_record(results, histories), cfg.train_seed)


def _seed_rule(values, pos: str, neg: str, tie: str) -> dict:
    """The verdict rule on one list of per-seed differences: mean, 95 % t half-width, n, word."""
    d = over_seeds(values)
    return d | {"verdict": {1: pos, -1: neg, 0: tie}[d["direction"]]}


def reward_facts(runs: dict, names, probe: dict | None = None) -> dict:
    """Reward heads across seeds: AUPRC against the event rate, MSE against predicting 0 and the mean."""
    rows = seedstats.reward_rows(runs, names)
    out = {"probe": probe, "models": {}}
    for name in names:
        r = rows[name]
        tie = "cannot be told apart from"
        out["models"][name] = {
            "seeds": r["seeds"], "auprc": float(np.mean(r["auprc"])) if r["seeds"] else float("nan"),
            "event_rate": float(np.mean(r["event_rate"])) if r["seeds"] else float("nan"),
            "auprc_vs_rate": _seed_rule(np.subtract(r["auprc"], r["event_rate"]), "above", "below", tie),
            "mse_vs_zero": _seed_rule(np.subtract(r["mse"], r["mse_zero"]), "above", "below", tie),
            "mse_vs_mean": _seed_rule(np.subtract(r["mse"], r["mse_mean"]), "above", "below", tie)}
    return out


def ablation_facts(borrowed: dict | None, runs: dict, variant: str = "tf2", a: str = "RSSM", b: str = "Transformer",
                   h: int = 1) -> dict | None:
    """The variant's Transformer against the same seeds' RSSM at horizon h, by the same rule."""
    var = seedstats.variant_runs(borrowed, variant, runs)
    if len(var) < 2:
        return None
    out = {"variant": variant, "overrides": borrowed["variants"][variant].get("overrides", {}), "h": h,
           "seeds": list(var), "lead": {}}
    for metric in ("whole", "changed"):
        s = seedstats.spread(var, (b, "mode"), (a, "mode"), metric)
        d = {"mean": s["mean"][h - 1], "ci": s["ci"][h - 1], "n": s["n"]}
        d["verdict"] = {1: "leads", -1: "leads", 0: "cannot be told apart"}[decide(d["mean"], d["ci"])]
        d["leader"] = (b if d["mean"] > 0 else a) if d["verdict"] == "leads" else None
        out["lead"][metric] = d
    return out


def memory_runs(memory: dict, borrowed: dict | None, cfg) -> dict:
    """{seed: cue-recall run}: the seeds file's memory runs (when made on the same task) with this
    run's as its own seed, replacing the file's entry for it."""
    section = (borrowed or {}).get("memory")
    if section and section.get("config") != memory["config"]:
        section = None  # recall measured on another task is not borrowed
    return seedstats.seed_runs(None, memory, cfg.train_seed, section=section or {"runs": {}})


def memory_facts(memory: dict, borrowed: dict | None, cfg, a: str = "RSSM", b: str = "Transformer") -> dict:
    """Cue recall across seeds (this run's memory experiment as its own seed): per gap, each
    model's recall against chance and the difference b - a, in the memory condition."""
    runs = memory_runs(memory, borrowed, cfg)
    gaps = memory["config"]["gaps"]
    chance = memory["chance"]

    def per_seed(name, cond="memory"):
        return np.array([r["models"][name]["identified"][cond] for r in runs.values()])  # [n, gaps]

    out = {"seeds": list(runs), "gaps": gaps, "chance": chance, "window_steps": memory.get("window_steps"),
           "models": {}, "difference": {}}
    for name in (a, b):
        mem, ctl = per_seed(name), per_seed(name, "control")
        out["models"][name] = {
            "memory": [_seed_rule(mem[:, i] - chance, "above chance", "below chance", "at chance") | {
                "recall": float(mem[:, i].mean())} for i in range(len(gaps))],
            "control": [float(ctl[:, i].mean()) for i in range(len(gaps))]}
    diff = per_seed(b) - per_seed(a)
    out["difference"] = [_seed_rule(diff[:, i], f"the {b} recalls more", f"the {a} recalls more",
                                    "cannot be told apart") for i in range(len(gaps))]
    return out


def markov_facts(markov: dict) -> dict:
    """How far PSNR moves when the real past is cut from the longest K to fewer steps (one run)."""
    ks, hs = markov["ks"], markov["horizons"]
    out = {"ks": ks, "horizons": hs, "models": {}}
    for name, rows in markov["psnr"].items():
        rows = np.asarray(rows)
        full = rows[-1]
        beyond = [i for i, k in enumerate(ks) if k >= 2]
        out["models"][name] = {
            "k1_minus_full": float(np.abs(rows[0] - full).max()),  # only the last frame, against all K
            "k2_on": float(np.abs(rows[beyond] - full).max()) if beyond else float("nan")}  # K >= 2
    out["flat_from_2"] = all(m["k2_on"] <= MARKOV_FLAT_DB for m in out["models"].values())
    return out


def decide_facts(results: dict, histories: dict, cfg, seeds_doc: dict | None = None, device: str | None = None,
                 horizons=(1, 3, 5, 10), a: str = "RSSM", b: str = "Transformer", clock: dict | None = None,
                 projected: bool = False, memory: dict | None = None, markov: dict | None = None,
                 probe: dict | None = None, ablation: str = "tf2") -> dict:
    """Everything the conclusion says, as numbers and verdict words.

    results/histories: this run's evaluate_rollouts output and training histories. seeds_doc: the
    seeds file (seeds.load_seeds) or None; its spread is used only when its config equals this
    run's (seeds.config_differences), and this run replaces the file's entry for its own seed.
    clock/projected: Section 5's wall clocks on this device (projected: the RSSM's is projected).
    memory/markov: Section 6's results. probe: the reward-from-frames ceiling (reward_probe.json)."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    borrowed, differences = usable_seeds(seeds_doc, cfg)
    runs = this_run_seeds(results, histories, cfg, seeds_doc)
    n = len(runs)
    facts = {"horizons": horizons, "models": [a, b], "n_seeds": n, "seeds": list(runs),
             "this_seed": str(cfg.train_seed),
             "replaced_shipped": bool(seedstats.shipped_run(borrowed, cfg.train_seed)),
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
            d["verdict"] = {1: "leads", -1: "leads", 0: "cannot be told apart"}[decide(d["mean"], d["ci"])]
            d["leader"] = (b if d["mean"] > 0 else a) if d["verdict"] == "leads" else None
        facts["lead"][metric] = lead
        for name in (a, b):
            for key, _ in BASELINES:
                other = (name, key) if key == "latent_hold" else ("baselines", key)
                m = rule((name, "mode"), other, metric)
                for d in m.values():
                    words = {1: "beats", -1: "falls below", 0: "cannot be told apart from"}
                    d["verdict"] = words[decide(d["mean"], d["ci"])]
                facts["baselines"][name].setdefault(key, {})[metric] = m

    # this run's window CI, labelled for what it is (window noise for one trained pair)
    facts["window_ci"] = {m: {h: {"mean": w["mean"][h - 1], "ci": w["ci"][h - 1]} for h in horizons}
                          for m in ("whole", "changed")
                          for w in [paired_margin(results, (b, "mode"), (a, "mode"), m)]}
    facts["reward"] = reward_facts(runs, (a, b), probe)
    facts["ablation"] = ablation_facts(borrowed, runs, ablation, a, b) if n >= 2 else None
    facts["memory"] = memory_facts(memory, borrowed, cfg, a, b) if memory else None
    facts["markov"] = markov_facts(markov) if markov else None

    # cost: wall clock only on one device; a projected clock is labelled as projected
    ra, rb = histories[a].get("device_record"), histories[b].get("device_record")
    same = same_device(ra, rb)
    ms = {name: (clock or histories)[name].get("ms_per_step") for name in (a, b)}
    facts["cost"] = {"same_device": same, "projected": bool(projected and clock),
                     "devices": {a: histories[a].get("device"), b: histories[b].get("device")}, "ms_per_step": ms,
                     "ratio": ms[b] / ms[a] if (same or (projected and clock)) and ms[a] else None}
    return facts


# ---- facts -> words -----------------------------------------------------------------------------------
def _pm(d: dict, unit: str = " dB") -> str:
    ci = "" if math.isnan(d["ci"]) else f" ± {d['ci']:.2f}"
    return f"{d['mean']:+.2f}{ci}{unit}"


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


def _pct_less_error(db: float) -> float:
    """A PSNR lead of `db` dB as the percentage of squared error the leader avoids: 1 - 10^(-db/10)."""
    return 100 * (1 - 10 ** (-abs(db) / 10))


def headline(facts: dict) -> str:
    """One line: which world model imagines better, where, and how big that is."""
    a, b = facts["models"]
    leads = {m: {h: d for h, d in facts["lead"][m].items() if d["verdict"] == "leads"} for m in ("whole", "changed")}
    leaders = {d["leader"] for m in leads.values() for d in m.values()}
    basis = f"over {facts['n_seeds']} training seeds" if facts["seed_spread"] else "for this one trained pair"
    if not leaders:
        return f"**In one line:** {basis}, neither world model imagines better at any horizon scored."
    parts = []
    for metric, words in (("whole", "the whole frame"), ("changed", "changed pixels")):
        for who in sorted({d["leader"] for d in leads[metric].values()}):
            mine = {h: d for h, d in leads[metric].items() if d["leader"] == who}
            big = max(abs(d["mean"]) for d in mine.values())
            parts.append(f"on {words} the {who} imagines better at {_hs(mine)} (largest lead {big:.2f} dB, "
                         f"{_pct_less_error(big):.0f} % less squared error)")
    biggest = max(abs(d["mean"]) for m in leads.values() for d in m.values())
    small = (f" A lead under {SMALL_DB} dB is not something the eye finds in the rollout frames above."
             if biggest < SMALL_DB else "")
    return (f"**In one line:** {basis}, " + "; ".join(parts)
            + ". At every other horizon scored the two cannot be told apart." + small)


def _lies(word: str) -> str:
    """"above" -> "lies above"; the tie phrase reads as it is."""
    return f"lies {word}" if word in ("above", "below") else word


def _reward_sentence(facts: dict) -> str:
    r = facts["reward"]
    bits = []
    for name, m in r["models"].items():
        if not m["seeds"]:
            continue
        v = m["auprc_vs_rate"]
        n = len(m["seeds"])
        bits.append(f"the {name}'s head (AUPRC {m['auprc']:.3f} against an event rate of {m['event_rate']:.3f}, "
                    f"{n} seed{'s' if n != 1 else ''}) {_lies(v['verdict'])} the event rate "
                    f"(difference {_pm(v, '')}); its MSE {_lies(m['mse_vs_zero']['verdict'])} that of predicting 0 "
                    f"and {_lies(m['mse_vs_mean']['verdict'])} that of predicting the mean")
    if not bits:
        return ""
    rate = np.nanmean([m["event_rate"] for m in r["models"].values() if m["seeds"]])
    text = (f"* Reward heads, judged on the {100 * rate:.1f} % of steps that carry a reward: " + "; ".join(bits)
            + ".")
    p = r.get("probe")
    if p:
        text += (f" What the frames can support at 64×64: a small CNN trained on real frames reaches an AUPRC of "
                 f"{p['auprc_before']:.3f} from what a reward head sees (o_t−1, o_t, a_t) and {p['auprc_after']:.3f} "
                 f"after the fact (o_t, o_t+1), against a prevalence of {p['prevalence']:.3f} (reward_probe.json).")
    return text


def _ablation_sentence(facts: dict) -> str:
    ab = facts.get("ablation")
    if not ab:
        return ""
    a, b = facts["models"]
    bits = []
    for metric, words in (("whole", "whole frame"), ("changed", "changed pixels")):
        main, d = facts["lead"][metric][ab["h"]], ab["lead"][metric]
        same = (main["verdict"], main.get("leader")) == (d["verdict"], d.get("leader"))
        say = "leads" if d["verdict"] == "leads" else "cannot be told apart"
        who = f"the {d['leader']} {say}" if d["leader"] else "the two cannot be told apart"
        bits.append(f"{words}: {who} ({b} − {a} = {_pm(d)}, {d['n']} seeds), so matching capacity "
                    f"{'does not change' if same else 'changes'} the verdict")
    knobs = ", ".join(f"{k}={v}" for k, v in ab["overrides"].items())
    return (f"* Capacity: the ablation {ab['variant']} ({knobs}: fewer dynamics parameters than the RSSM), at "
            f"h = {ab['h']}, " + "; ".join(bits) + ".")


def _memory_sentences(facts: dict) -> list[str]:
    out = []
    mk = facts.get("markov")
    if mk:
        hs = ", ".join(map(str, mk["horizons"]))
        k2 = "; ".join(f"the {name}'s by at most {m['k2_on']:.2f} dB" for name, m in mk["models"].items())
        k1 = "; ".join(f"the {name}'s by {m['k1_minus_full']:.2f} dB" for name, m in mk["models"].items())
        verdict = ("flat: beyond the last two frames the past adds nothing measurable to predicting this game, "
                   "so neither backbone can win by remembering it" if mk["flat_from_2"] else
                   f"not flat: PSNR still moves by more than {MARKOV_FLAT_DB} dB beyond K = 2, so the past matters")
        out.append(f"* Markov check (this run, window means, h = {hs}): with K = 2 to {mk['ks'][-1]} real context "
                   f"frames PSNR moves {k2}; with only the last frame, {k1}. The curves are {verdict}.")
    mem = facts.get("memory")
    if mem:
        a, b = facts["models"]
        n = len(mem["seeds"])
        rec = {name: ", ".join(f"{d['recall']:.2f}" for d in m["memory"]) for name, m in mem["models"].items()}
        diffs = [(g, d) for g, d in zip(mem["gaps"], mem["difference"])]
        said = "; ".join(f"L = {g}: {d['verdict']} ({_pm(d, '')})" for g, d in diffs)
        out.append(f"* Where the past matters (cue recall, {n} seed{'s' if n != 1 else ''}, chance "
                   f"{mem['chance']:.2f}, gaps L = {', '.join(map(str, mem['gaps']))}): the {a} names the cue in "
                   f"{rec[a]} of the sequences, the {b} in {rec[b]}. Per gap, {b} − {a}: {said}.")
    return out


def conclusion_markdown(facts: dict) -> str:
    """The comparison paragraph, every number and verdict word taken from `facts`."""
    a, b = facts["models"]
    bud = facts["budget"]
    n = facts["n_seeds"]
    if facts["seed_spread"]:
        basis = (f"Verdicts below are decided across **{n} training seeds** ({', '.join(facts['seeds'])}; this "
                 f"notebook's run is seed {facts['this_seed']}"
                 + (", in place of the seeds file's entry for it" if facts.get("replaced_shipped") else "")
                 + ") by a 95 % t-interval over seeds of the seed-by-seed difference (`stats.decide`): a gap "
                 "inside the training noise is reported as \"cannot be told apart\".")
    else:
        why = ("the seeds file was made with another configuration ("
               + ", ".join(facts["seeds_not_used_because"][:4]) + ")") if facts["seeds_not_used_because"] else \
            "there is no seeds file for this configuration"
        basis = (f"**This budget has no seed spread** ({why}): the verdicts below rest on one trained pair and "
                 f"its paired window CI, which measures window noise only, not training noise.")
    lines = [headline(facts), "",
             f"**What we observed** ({bud['preset']} budget: {bud['train_steps']:,} gradient steps of "
             f"{bud['batch_size']}×{bud['seq_len']}, lr {bud['lr']:g}, for both models"
             + (f"; device {facts['device']}" if facts.get("device") else "") + "). " + basis, ""]
    lines.append("* " + _lead_sentence(facts["lead"]["whole"], "the whole frame", a, b))
    lines.append("* " + _lead_sentence(facts["lead"]["changed"], "changed pixels (where the boxers move)", a, b))
    for name in (a, b):
        lines.append("* " + _baseline_sentence(name, facts))
    lines.append("* What shows motion is the margin on **changed pixels** over latent-hold and context-mean; a "
                 "model that only blurs can sit above latent-hold on the whole frame. The margins above are "
                 + ("seed means ± the t-interval over seeds" if facts["seed_spread"] else
                    "this run's window means ± their window CI")
                 + " (the baseline table above shows them).")
    for extra in (_ablation_sentence(facts), _reward_sentence(facts), *_memory_sentences(facts)):
        if extra:
            lines.append(extra)
    c = facts["cost"]
    if c["ratio"] is not None:
        how = "both timed here" if c["same_device"] else f"the {a}'s step projected onto this device from a burst"
        lines.append(f"* Cost, on one device ({c['devices'][b]}; {how}): a training step took "
                     f"{c['ms_per_step'][b]:.0f} ms for the {b} and {c['ms_per_step'][a]:.0f} ms for the {a}: "
                     f"ratio {c['ratio']:.2f}" + (" (projected)" if c.get("projected") else "") + ".")
    else:
        lines.append(f"* Cost: the {a} was trained on {c['devices'][a]} and the {b} on {c['devices'][b]}, so their "
                     "wall clocks are not compared; per gradient step the budgets are identical.")
    return "\n".join(lines)


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
