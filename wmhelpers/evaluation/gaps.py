"""The gap between the two world models, seed by seed: the numbers behind the gap figure and the
difference table the verdict is decided from. A gap is b - a (Transformer - RSSM) of each seed's
per-horizon mean PSNR, summarised over seeds with stats.interval: mean ± t_{0.975, n-1} · sd / sqrt(n).
"""

from __future__ import annotations

import numpy as np

from .seeds import per_seed, sorted_runs, spread
from .stats import decide, t_multiplier
from .verdict import WORDS

METRICS = ("whole", "changed")
METRIC_WORDS = {"whole": "whole frame", "changed": "changed pixels"}


def gap_data(runs: dict, a: str = "RSSM", b: str = "Transformer", curve: str = "mode",
             metrics=METRICS) -> dict:
    """Per metric, b - a of each seed's mean PSNR over horizons 1..H and its spread over seeds:

        {metric: {"per_seed": array [n, H] (row i: seeds[i]), "mean": [H], "ci": [H] (half-width of
                  the 95 % t-interval over seeds; NaN with one seed), "sd": [H], "n": n,
                  "seeds": [seed, ...], "horizons": [1..H]}}
    """
    runs = sorted_runs(runs)
    out = {}
    for metric in metrics:
        x = per_seed(runs, (b, curve), (a, curve), metric)
        s = spread(runs, (b, curve), (a, curve), metric)
        out[metric] = {"per_seed": x, "mean": s["mean"], "ci": s["ci"], "sd": s["sd"], "n": s["n"],
                       "seeds": list(runs), "horizons": list(range(1, x.shape[1] + 1))}
    return out


def difference_table(runs: dict, a: str = "RSSM", b: str = "Transformer", horizons=(1, 10),
                     metrics=METRICS, curve: str = "mode") -> dict:
    """The arithmetic of the verdict, one column per (metric, horizon): each seed's b - a, then
    mean, sd, n, the t multiplier t_{0.975, n-1}, the half-width t · sd / sqrt(n), the interval
    [lo, hi] = mean ± half-width and the verdict word.

    The verdict's own rule (stats.decide): an interval wholly above 0 -> direction +1, "<b> leads";
    wholly below -> -1, "<a> leads"; containing 0 (or NaN with one seed) -> 0, "cannot be told apart".

    Returns {"a", "b", "seeds": [...], "columns": [(metric, h), ...], "diff": {seed: [per column]},
             "mean", "sd", "n", "t", "half", "lo", "hi", "direction", "verdict": [per column]}.
    """
    data = gap_data(runs, a, b, curve, metrics)
    H = len(next(iter(data.values()))["horizons"]) if data else 0
    columns = [(m, h) for m in metrics for h in horizons if h <= H]
    seeds = next(iter(data.values()))["seeds"] if data else []
    out = {"a": a, "b": b, "seeds": seeds, "columns": columns,
           "diff": {s: [float(data[m]["per_seed"][i, h - 1]) for m, h in columns] for i, s in enumerate(seeds)}}
    for key in ("mean", "sd", "half", "t", "n", "lo", "hi", "direction", "verdict"):
        out[key] = []
    for m, h in columns:
        d = data[m]
        n = int(np.sum(~np.isnan(d["per_seed"][:, h - 1])))
        mean, sd, half = float(d["mean"][h - 1]), float(d["sd"][h - 1]), float(d["ci"][h - 1])
        out["mean"].append(mean)
        out["sd"].append(sd)
        out["n"].append(n)
        out["t"].append(float(t_multiplier(n)))
        out["half"].append(half)
        out["lo"].append(mean - half)
        out["hi"].append(mean + half)
        out["direction"].append(decide(mean, half))
        out["verdict"].append(WORDS["lead"][out["direction"][-1]].format(a=a, b=b))
    return out
