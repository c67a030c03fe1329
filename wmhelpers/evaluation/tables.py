"""The notebook's tables, as `Table` objects that render as HTML tables in Jupyter and as plain
text under print(): PSNR per curve, per seed, the verdict's arithmetic, the baseline margins and
the reward heads."""

from __future__ import annotations

import html
import math
import textwrap

import numpy as np

from .psnr import PSNR_CAP_DB


def capped_counts(results: dict) -> list[tuple]:
    """(curve name, metric, horizon, windows) for every curve and horizon where some window's
    PSNR sat at the cap, PSNR_CAP_DB; an empty list when none did."""
    curves = [(f"{name} {curve}", s) for name, cs in results["models"].items() for curve, s in cs.items()]
    curves += [(name, s) for name, s in results["baselines"].items()]
    return [(label.replace("_", "-"), metric, h, count)
            for label, s in curves for metric in ("whole", "changed")
            for h, count in zip(results["horizons"], s[metric].get("capped", [])) if count]


# ---- tables as tables: HTML in Jupyter, plain text under print() -------------------------------------
TEXT_WIDTH = 95  # characters: a text table this wide does not wrap on a 1000 px page


class Table:
    """A small table that renders as an HTML table in Jupyter (`_repr_html_`) and as plain text
    under print() (`__str__`, `_repr_pretty_`), no wider than TEXT_WIDTH characters when it can be.

    columns: header names. rows: lists of cells (str, int or float; floats are written with `fmt`,
    NaN as "n/a"); a row that is None draws a rule before the next row. groups: optional
    [(label, number of columns), ...] spanning headers over the columns. left: how many leading
    columns are labels (left-aligned); the rest are numbers (right-aligned). title: above the
    table; caption: below it. sep: the gap between text columns.
    """

    def __init__(self, columns, rows, title: str = "", caption: str = "", groups=None, left: int = 1,
                 fmt: str = "{:.2f}", sep: str = "  "):
        self.columns = [str(c) for c in columns]
        self.rows = [None if r is None else list(r) for r in rows]
        self.title, self.caption, self.groups, self.left, self.fmt, self.sep = title, caption, groups, left, fmt, sep

    def cell(self, v) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if v is None or isinstance(v, float) and math.isnan(v) or isinstance(v, np.floating) and np.isnan(v):
            return "n/a"
        return self.fmt.format(v)

    def body(self) -> list:
        """The rows as strings (None for a rule)."""
        return [None if r is None else [self.cell(v) for v in r] for r in self.rows]

    # -- text --
    def to_text(self) -> str:
        body = self.body()
        widths = [len(c) for c in self.columns]
        for r in body:
            if r is not None:
                widths = [max(w, len(c)) for w, c in zip(widths, r)]
        spans = []
        if self.groups:
            i = 0
            for label, k in self.groups:
                span = sum(widths[i:i + k]) + len(self.sep) * (k - 1)
                if len(label) > span:  # widen the group's last column to fit its label
                    widths[i + k - 1] += len(label) - span
                    span = len(label)
                spans.append((label, span))
                i += k

        def line(cells):
            return self.sep.join(c.ljust(w) if j < self.left else c.rjust(w)
                                 for j, (c, w) in enumerate(zip(cells, widths))).rstrip()

        total = sum(widths) + len(self.sep) * (len(widths) - 1)
        out = [self.title] if self.title else []
        if spans:
            out.append(self.sep.join(label.ljust(span) for label, span in spans).rstrip())
        out += [line(self.columns), "-" * total]
        out += ["-" * total if r is None else line(r) for r in body]
        if self.caption:
            out += textwrap.wrap(self.caption, width=max(total, min(TEXT_WIDTH, 80)))
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.to_text())

    # -- HTML --
    def _repr_html_(self) -> str:
        esc = html.escape
        pad = "padding:1px 8px"
        th = f"{pad};border-bottom:1px solid #999;font-weight:600"

        def align(j):
            return "left" if j < self.left else "right"

        head = ""
        if self.groups:
            head += "<tr>" + "".join(
                f'<th colspan="{k}" style="{pad};text-align:{"left" if not label else "center"};'
                f'border-bottom:{"1px solid #ccc" if label else "none"};font-weight:600">{esc(label)}</th>'
                for label, k in self.groups) + "</tr>"
        head += "<tr>" + "".join(f'<th style="{th};text-align:{align(j)}">{esc(c)}</th>'
                                 for j, c in enumerate(self.columns)) + "</tr>"
        rows, rule = [], False
        for r in self.body():
            if r is None:
                rule = True
                continue
            top = ";border-top:1px solid #999" if rule else ""
            rows.append("<tr>" + "".join(f'<td style="{pad};text-align:{align(j)}{top}">{esc(c)}</td>'
                                         for j, c in enumerate(r)) + "</tr>")
            rule = False
        title = f'<div style="font-weight:600;margin:4px 0">{esc(self.title)}</div>' if self.title else ""
        caption = (f'<div style="font-size:12px;color:#444;max-width:960px;margin:4px 0">{esc(self.caption)}</div>'
                   if self.caption else "")
        table = ('<table style="border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;'
                 f'margin:0;max-width:980px"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>')
        return f"<div>{title}{table}{caption}</div>"


def psnr_table(results: dict, horizons=(1, 3, 5, 10)) -> Table:
    """Mean PSNR over the evaluation windows per curve (rows: every model curve, then the model-free
    baselines), whole-frame and changed-pixel at the given horizons; the capped windows in the caption."""
    hs = [h for h in horizons if h <= len(results["horizons"])]
    curves = [(f"{name} {curve}", c) for name, cs in results["models"].items() for curve, c in cs.items()]
    curves += list(results["baselines"].items())
    rows = [[label.replace("_", "-")] + [c[m]["mean"][h - 1] for m in ("whole", "changed") for h in hs]
            for label, c in curves]
    capped = capped_counts(results)
    cap = f"Windows capped at {results.get('psnr_cap_db', PSNR_CAP_DB):.1f} dB (the 8-bit quantization limit): "
    cap += "; ".join(f"{c} {m} h={h}: {n}" for c, m, h, n in capped) if capped else "none"
    return Table(["curve"] + [f"h={h}" for h in hs] * 2, rows,
                 title="mean PSNR (dB) over the evaluation windows", caption=cap + ".",
                 groups=[("", 1), ("whole-frame PSNR (dB)", len(hs)), ("changed-pixel PSNR (dB)", len(hs))])


def seed_table(runs: dict, this_seed=None, horizons=(1, 3, 5, 10), names=("RSSM", "Transformer"),
               shipped: dict | None = None, title: str = "mode-rollout PSNR (dB) per training seed") -> Table:
    """The seed table as a Table: mode-rollout PSNR per training seed and model, whole-frame and
    changed-pixel at the given horizons, then per model the mean over seeds and the half-width of
    its 95 % t-interval (seeds.spread). The row of `this_seed` is labelled "<seed> (this run)".
    shipped: optional run record (the format of a runs value, seeds.seed_record) of the committed
    checkpoints, drawn beside this run as "<seed> (shipped)"; it is not part of the mean."""
    from .seeds import sorted_runs, spread

    if not runs:
        return Table(["seed"], [], title="no training seeds")
    runs = sorted_runs(runs)
    H = len(next(iter(runs.values()))["models"][names[0]]["psnr"]["mode"]["whole"]["mean"])
    hs = [h for h in horizons if h <= H]

    def cells(run, name):
        c = run["models"][name]["psnr"]["mode"]
        return [c[m]["mean"][h - 1] for m in ("whole", "changed") for h in hs]

    mine = None if this_seed is None else str(this_seed)
    rows = []
    for seed, run in runs.items():
        label = f"{seed} (this run)" if seed == mine else str(seed)
        rows += [[label, name] + cells(run, name) for name in names]
        if shipped is not None and seed == mine:
            rows += [[f"{seed} (shipped)", name] + cells(shipped, name) for name in names]
    if shipped is not None and mine not in runs:
        rows += [["shipped" if mine is None else f"{mine} (shipped)", name] + cells(shipped, name) for name in names]
    n = len(runs)
    if n > 1:
        rows.append(None)
        for name in names:
            s = {m: spread(runs, (name, "mode"), None, m) for m in ("whole", "changed")}
            rows.append(["mean", name] + [s[m]["mean"][h - 1] for m in ("whole", "changed") for h in hs])
            rows.append(["± (95 % t)", name] + [s[m]["ci"][h - 1] for m in ("whole", "changed") for h in hs])
    caption = (f"{n} training seed{'s' if n != 1 else ''}; mean and ± (the half-width of the 95 % t-interval) "
               "are over training seeds (training noise), not over evaluation windows.")
    if shipped is not None:
        caption += (f" Two rows for seed {mine}: \"this run\" is what this notebook trained and evaluated, and it is "
                    "the one in the mean and the verdict; \"shipped\" is the committed checkpoint of the same seed, "
                    "trained on the reference machine and shown only to compare (the same CPU kind, precision and "
                    "code retrain it to the same numbers).")
    return Table(["seed", "model"] + [f"h={h}" for h in hs] * 2, rows, left=2,
                 title=title, caption=caption,
                 groups=[("", 2), ("whole-frame PSNR (dB)", len(hs)), ("changed-pixel PSNR (dB)", len(hs))])


def difference_table(runs: dict, a: str = "RSSM", b: str = "Transformer", horizons=(1, 10),
                     this_seed=None, title: str | None = None, metrics=("whole", "changed")) -> Table:
    """The verdict's arithmetic (gaps.difference_table) as a Table: one row per training seed with
    b - a of its mode-rollout PSNR, then mean, sd, n, the t multiplier, the half-width
    t · sd / sqrt(n), the interval mean ± half-width and the verdict word (stats.decide)."""
    from .gaps import METRIC_WORDS
    from .gaps import difference_table as arithmetic

    d = arithmetic(runs, a, b, horizons, metrics)
    mine = None if this_seed is None else str(this_seed)
    rows = [[f"{s} (this run)" if s == mine else str(s)] + d["diff"][s] for s in d["seeds"]]
    unsigned = Table([], []).cell  # "n/a" for NaN

    def plain(v, f=".3f"):
        return unsigned(v) if isinstance(v, float) and math.isnan(v) else format(v, f)

    rows += [None, ["mean"] + d["mean"], ["sd"] + [plain(v) for v in d["sd"]], ["n"] + d["n"],
             ["t (95 %)"] + [plain(t, ".2f") for t in d["t"]],
             ["half-width"] + [plain(v) for v in d["half"]],
             ["interval"] + [f"[{lo:+.3f}, {hi:+.3f}]" if not math.isnan(hi - lo) else "n/a"
                             for lo, hi in zip(d["lo"], d["hi"])],
             ["verdict"] + d["verdict"]]
    if all("recon_ceiling" in run["models"][n]["psnr"] for run in runs.values() for n in (a, b)):
        # what bounds a lead: each model's own autoencoder redrawing the true frames
        rows += [None, ["ceiling gap"] + arithmetic(runs, a, b, horizons, metrics, curve="recon_ceiling")["mean"]]
    columns = ["seed"] + [f"{METRIC_WORDS[m]} h={h}" for m, h in d["columns"]]
    caption = (f"Each seed's {b} − {a} mean PSNR over the evaluation windows (positive: {b} better). "
               "half-width = t · sd / √n, t the 97.5 % quantile of Student's t with n−1 degrees of freedom; "
               f"an interval wholly above 0 says \"{b} leads\", wholly below 0 \"{a} leads\", "
               "one containing 0 \"cannot be told apart\". ceiling gap: the same difference of the two "
               "reconstruction ceilings (each model's own autoencoder redrawing the true frames), mean over seeds: "
               "each model trains its own encoder and decoder, so part of a lead can be the sharper decoder.")
    what = " and ".join(METRIC_WORDS[m] for m in metrics)
    return Table(columns, rows, title=title or f"{b} − {a} PSNR (dB), {what}, seed by seed", caption=caption,
                 fmt="{:+.3f}",
                 sep=" ")


def _pm_cell(d: dict, f: str = ".2f") -> str:
    ci = "" if d["ci"] != d["ci"] else f" ± {d['ci']:{f}}"  # NaN: one seed, no spread
    return f"{d['mean']:+{f}}{ci}"


def baseline_margin_table(facts: dict) -> Table:
    """Each model minus each baseline at every horizon of the facts (verdict.pair_facts): mean ±
    95 % t-interval over seeds, with the verdict's mark (▲ beats, ▼ falls below, = a tie)."""
    from .verdict import BASELINES, WORDS

    hs = facts["horizons"]
    rows = []
    for name in facts["models"]:
        for metric, words in (("whole", "whole"), ("changed", "changed")):
            for key, label in BASELINES:
                b = facts["baselines"][name][key][metric]
                rows.append([name, words, label] + [f"{_pm_cell(b[h])} {WORDS['mark'][b[h]['direction']]}"
                                                    for h in hs])
        rows.append(None)
    basis = f"{facts['n_seeds']} training seeds" if facts["seed_spread"] else "one run's windows"
    return Table(["model", "pixels", "minus"] + [f"h={h}" for h in hs], rows[:-1], left=3,
                 title="Each model minus each baseline (dB)",
                 caption=f"mean ± 95 % t-interval over {basis}; ▲ beats, ▼ falls below, = cannot be told apart "
                         "(the verdict's rule). Changed pixels: where the true frame differs from the last "
                         "context frame, i.e. where the boxers move.")


def reward_verdict_table(facts: dict) -> Table:
    """The reward heads decided across seeds (verdict.reward_facts): AUPRC against the event rate and
    the head's MSE against the two constant predictors, each difference mean ± 95 % t with its mark."""
    from .verdict import WORDS

    rows = []
    for name, m in facts["reward"]["models"].items():
        if not m["seeds"]:
            rows.append([name, "0"] + ["n/a"] * 4)
            continue
        cells = [f"{_pm_cell(m[k], '.3f')} {WORDS['mark'][m[k]['direction']]}"
                 for k in ("auprc_vs_rate", "mse_vs_zero", "mse_vs_mean")]
        rows.append([name, str(len(m["seeds"])), f"{m['auprc']:.3f}"] + cells)
    return Table(["model", "seeds", "AUPRC", "AUPRC − events", "MSE − MSE of 0", "MSE − MSE of mean"], rows,
                 left=2, fmt="{:+.4f}", title="Reward heads across seeds",
                 caption="AUPRC minus the event rate (what a head that knows nothing scores), and the head's MSE "
                         "minus that of always predicting 0 or the mean; mean ± 95 % t over seeds, ▲ above, ▼ below, "
                         "= cannot be told apart.")


def reward_table(runs: dict, names=("RSSM", "Transformer")) -> Table:
    """Reward heads per seed: event rate, AUPRC of |r_hat| for r != 0, MSE of the head, of 0, of the mean."""
    rows, missing = [], []
    for seed, run in runs.items():
        for name in names:
            r = run["models"][name].get("reward")
            if r:
                rows.append([str(seed), name, r["event_rate"], r["auprc"], r["mse"], r["mse_zero"], r["mse_mean"]])
            else:
                missing.append(f"{name} seed {seed}")
    caption = ("events: the fraction of steps with r ≠ 0 (what AUPRC scores by chance); AUPRC: how well |r̂| ranks "
               "those steps first; MSE of 0 / of mean: the two constant predictors.")
    if missing:
        caption += (f" No row for {', '.join(missing)}: those seeds-file records were made before reward heads were "
                    "scored, and their checkpoints are not shipped, so they cannot be scored here.")
    return Table(["seed", "model", "events", "AUPRC", "MSE", "MSE of 0", "MSE of mean"], rows, left=2, fmt="{:.4f}",
                 title="Reward heads per seed, on the evaluation windows' steps", caption=caption)


def memory_table(summary: dict, load: str) -> Table:
    """One cue-recall load decided across seeds (memory_verdict.summary): per learner and gap the mean
    score with three marks, against chance, against its own control and against the RSSM."""
    from .verdict import WORDS

    s, mark = summary[load], WORDS["mark"]
    rows = [[cond] + [f"{d['memory'][i]['mean']:.2f} " + "".join(
        mark[x[i]["direction"]] for x in (d["minus_chance"], d["minus_control"], d.get("minus_rssm")) if x)
        for i in range(len(s["gaps"]))] for cond, d in s["conditions"].items()]
    n = next(iter(s["conditions"].values()))["memory"][0]["n"]
    return Table(["learner"] + [f"gap {g}" for g in s["gaps"]], rows, title=f"Cue recall, {load}: {s['metric']}",
                 caption=f"mean over {n} seeds; marks, in order: against chance ({s['chance']:.2f}), against the "
                         "learner's own control (cue shown again), against the RSSM: ▲ above, ▼ below, = cannot be "
                         "told apart (95 % t-interval over seeds).")
