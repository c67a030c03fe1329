"""The causal sliding-window mask (shared by transformer.py and the mask figure): a query at
token position q may attend a key at position k when 0 <= q - k < window.
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
