"""Which token may attend which: the causal sliding-window mask of the Transformer world model.

Its own module because two readers need it: `transformer.py` (attention) and
`notebook_tools/plots.py` (the mask figure of Section 2), and neither should import the other for it.

A query at token position q may attend a key at position k when
    0 <= q - k < window
(causal: nothing from the future; sliding window: nothing `window` or more tokens back).
"""

from __future__ import annotations

import torch

# Position of a key-cache slot that holds no token yet. Any query q >= 0 is then
# q - EMPTY >= 2**40 tokens away, far outside every window, so the mask hides the slot.
EMPTY = -(2**40)


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """Boolean [Lq, Lk]: True where query may attend key, i.e. 0 <= q_pos - k_pos < window."""
    dist = q_pos[:, None] - k_pos[None, :]
    return (dist >= 0) & (dist < window)
