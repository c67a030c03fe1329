"""The text tables of mean PSNR the notebook prints (whole-frame | changed-pixel, per horizon)."""

from __future__ import annotations

from .psnr import PSNR_CAP_DB


def headline_table(results: dict, horizons=(1, 3, 5, 10), metric: str = "whole") -> list[dict]:
    """Rows {name, h1, h3, ...} of mean PSNR for the table in the notebook and README."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    rows = []
    for name, curves in results["models"].items():
        for curve in ("mode", "sampled", "latent_hold", "recon_ceiling", "teacher_forced"):
            m = curves[curve][metric]["mean"]
            rows.append({"name": f"{name} {curve.replace('_', '-')}", **{f"h{h}": m[h - 1] for h in horizons}})
    for name, c in results["baselines"].items():
        m = c[metric]["mean"]
        rows.append({"name": name.replace("_", "-"), **{f"h{h}": m[h - 1] for h in horizons}})
    return rows


def capped_counts(results: dict) -> list[tuple]:
    """(curve name, metric, horizon, windows) for every curve and horizon where some window's
    PSNR sat at the cap, PSNR_CAP_DB; an empty list when none did."""
    curves = [(f"{name} {curve}", s) for name, cs in results["models"].items() for curve, s in cs.items()]
    curves += [(name, s) for name, s in results["baselines"].items()]
    return [(label.replace("_", "-"), metric, h, count)
            for label, s in curves for metric in ("whole", "changed")
            for h, count in zip(results["horizons"], s[metric].get("capped", [])) if count]


def format_table(results: dict, horizons=(1, 3, 5, 10)) -> str:
    """Plain-text table of mean PSNR (whole-frame | changed-pixel) at the given horizons, and
    the windows whose PSNR was capped."""
    horizons = [h for h in horizons if h <= len(results["horizons"])]
    whole = headline_table(results, horizons, "whole")
    changed = headline_table(results, horizons, "changed")
    head = f"{'':30s}" + "".join(f"{'h=' + str(h):>8s}" for h in horizons)
    lines = [f"{'whole-frame PSNR (dB)':30s}", head]
    lines += [f"{r['name']:30s}" + "".join(f"{r[f'h{h}']:8.2f}" for h in horizons) for r in whole]
    lines += ["", f"{'changed-pixel PSNR (dB)':30s}", head]
    lines += [f"{r['name']:30s}" + "".join(f"{r[f'h{h}']:8.2f}" for h in horizons) for r in changed]
    capped = capped_counts(results)
    cap = f"windows capped at {results.get('psnr_cap_db', PSNR_CAP_DB):.1f} dB (the 8-bit quantization limit): "
    lines += ["", cap + ("; ".join(f"{c} {m} h={h}: {n}" for c, m, h, n in capped) if capped else "none")]
    return "\n".join(lines)
