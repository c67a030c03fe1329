"""Reward heads judged on events, not on squared error alone.

Under the random policy a reward (+1 or -1) arrives on ~3 % of steps. Mean-squared error then
rewards hedging: a head that always says 0 scores 0.03 and looks good. The question that matters
is whether the head's output ranks the steps WITH a reward above the steps without one:

    AUPRC  area under the precision-recall curve of the score |r_hat_t| for the event r_t != 0
           (average precision, ties grouped as one threshold). A head that knows nothing scores
           the event rate (the prevalence); 1 is perfect.

Beside it: the MSE of the head, of predicting 0 and of predicting the mean reward of the same steps.
"""

from __future__ import annotations

import numpy as np


def average_precision(scores, events) -> float:
    """AUPRC as average precision: sum over distinct thresholds of (R_k - R_{k-1}) * P_k, where
    P_k, R_k are the precision and recall of "score >= k-th largest distinct score". Equal scores
    form one threshold (a tie cannot be ranked for free). NaN when there is no event."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(events, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and events {y.shape} differ in shape")
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each group of equal scores
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def reward_event_metrics(pred, true) -> dict:
    """The head's scores r_hat against the true rewards r (same steps): n, event rate (the
    prevalence of r != 0), AUPRC of |r_hat| for r != 0, and the MSE of the head, of predicting 0
    and of predicting the mean of r (the best constant in squared error)."""
    pred, true = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(true, dtype=np.float64).ravel()
    if pred.shape != true.shape or not len(true):
        raise ValueError(f"need as many predictions as rewards (got {pred.shape} and {true.shape})")
    events = true != 0
    return {"n": int(len(true)), "event_rate": float(events.mean()),
            "auprc": average_precision(np.abs(pred), events),
            "mse": float(np.mean((pred - true) ** 2)), "mse_zero": float(np.mean(true ** 2)),
            "mse_mean": float(np.var(true))}
