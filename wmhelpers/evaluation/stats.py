"""Statistics, in one place: the mean and its 95 % t-interval, over evaluation windows (the window
noise of one trained pair) and over training seeds (the training noise).

Half-width of the interval: t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation (not
1.96: with 5 seeds the multiplier is 2.78, with 3 it is 4.30). NaN half-width below 2 values.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from .psnr import QUANTIZATION_MSE


def t_multiplier(n) -> np.ndarray:
    """Two-sided 95 % Student-t quantile t_{0.975, n-1} (1.96 only as n grows); NaN below 2 windows."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(n >= 2, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)


def interval(scores) -> dict:
    """Per column of scores [N, H] (windows or seeds x horizon steps): the mean, the 95 %
    t-interval half-width of that mean, the sample standard deviation and n, as arrays [H].
    NaNs (changed-pixel scores of windows where nothing changed) are skipped."""
    scores = np.asarray(scores, dtype=np.float64)
    n = np.sum(~np.isnan(scores), axis=0)
    with warnings.catch_warnings():  # a column with fewer than 2 values gets a NaN CI, said in the docstring
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(scores, axis=0)
        sd = np.nanstd(scores, axis=0, ddof=1)
    ci = t_multiplier(n) * sd / np.sqrt(np.maximum(n, 1))
    return {"mean": mean, "ci": ci, "sd": sd, "n": n}


def summarize(scores: np.ndarray) -> dict:
    """`interval` over windows as lists, one value per horizon step: {"mean", "ci", "n"}."""
    out = interval(scores)
    return {"mean": out["mean"].tolist(), "ci": out["ci"].tolist(), "n": out["n"].tolist()}


def summarize_psnr(scores: np.ndarray, mse: np.ndarray) -> dict:
    """`summarize` of per-window PSNR [N, H], plus two views one outlier cannot dominate:
    "psnr_of_mean_mse" 10 log10(1 / mean MSE) per step (the MSE is not capped: a perfect window
    adds 0 to the mean, not a huge PSNR) and "capped", the number of windows per step whose
    PSNR sits at PSNR_CAP_DB."""
    out = summarize(scores)
    mse = np.asarray(mse, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_mse = np.nanmean(mse, axis=0)
        out["psnr_of_mean_mse"] = (10 * np.log10(1 / np.maximum(mean_mse, QUANTIZATION_MSE))).tolist()
    # float32 MSE against the float32 clamp in mse_to_psnr: counts exactly the windows it capped
    out["capped"] = np.sum(mse.astype(np.float32) <= np.float32(QUANTIZATION_MSE), axis=0).tolist()
    return out


def decide(mean: float, half_width: float) -> int:
    """The one rule that turns an interval into a verdict, used for every verdict:

        mean - half_width > 0  -> +1   (the whole 95 % interval lies above 0)
        mean + half_width < 0  -> -1   (the whole interval lies below 0)
        otherwise              ->  0   (0 is inside: the difference cannot be told from noise)

    With one value there is no spread (half_width NaN), which is always 0. Words are chosen
    from the direction by the reader (verdict.WORDS), never compared as strings."""
    if math.isnan(half_width) or abs(mean) <= half_width:  # 0 inside the interval (or no interval)
        return 0
    return 1 if mean > 0 else -1


def over_seeds(values) -> dict:
    """The verdict rule on per-seed values: {"mean", "ci" (95 % t half-width), "n", "direction" (decide)}."""
    x = np.asarray(values, dtype=float)
    st = interval(x[:, None]) if len(x) else {"mean": [float("nan")], "ci": [float("nan")]}
    mean, ci = float(st["mean"][0]), float(st["ci"][0])
    return {"mean": mean, "ci": ci, "n": int(len(x)), "direction": decide(mean, ci)}
