"""The categorical latent: 32 variables x 32 classes = one 1024-dim one-hot token per frame.

Equations (as in the notebook):
    unimix            p = (1 - u) softmax(l) + u / K                          (u = 0.01)
    straight-through  z = onehot(sample) + p - sg(p)    value: the one-hot; gradient: dp
    KL                KL(q || p) = sum_vars sum_k q_k (log q_k - log p_k)
    dynamics loss     L_dyn = max(free, KL(sg(q) || p))   trains the prior / next-token predictor
    representation    L_rep = max(free, KL(q || sg(p)))   pulls the encoder toward predictability
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unimix_logits(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Log-probabilities of (1 - u) * softmax(logits) + u / K, so no class ever has probability < u/K."""
    logits = logits.float()
    if unimix <= 0:
        return logits.log_softmax(-1)
    probs = logits.softmax(-1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return probs.log()


def sample_one_hot(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A hard one-hot sample [..., V, K] of each categorical (no gradient), by the exponential race:
    argmax_k p_k / E_k with E_k ~ Exp(1) is Categorical(p). It is torch.multinomial(p, 1)'s very draw
    without its validity check, which reads the GPU back every call (a stall; no CUDA-graph capture)."""
    probs = logits.detach().softmax(-1)
    # contiguous, like multinomial's own draw: the k-th random number goes to the k-th (variable, class)
    race = probs.new_empty(probs.shape).exponential_(1.0, generator=generator)
    idx = (probs / race).argmax(-1)
    return F.one_hot(idx, probs.shape[-1]).to(probs.dtype)


def straight_through_sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One-hot sample [..., V, K] whose gradient is that of the probabilities (straight-through)."""
    probs = logits.softmax(-1)
    return sample_one_hot(logits, generator) + probs - probs.detach()


def mode_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """The most likely class of each variable, one-hot [..., V, K] (no gradient)."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)


def flat(z: torch.Tensor) -> torch.Tensor:
    """[..., V, K] -> [..., V*K]: the token the dynamics model and the decoder read."""
    return z.reshape(*z.shape[:-2], -1)


def categorical_kl(q_logits: torch.Tensor, p_logits: torch.Tensor) -> torch.Tensor:
    """KL(q || p) summed over variables and classes -> [...] (nats)."""
    q_log = q_logits.log_softmax(-1)
    p_log = p_logits.log_softmax(-1)
    return (q_log.exp() * (q_log - p_log)).sum((-2, -1))


def kl_losses(post_logits: torch.Tensor, prior_logits: torch.Tensor, free_bits: float):
    """(L_dyn, L_rep, raw KL) with free bits per time step, each averaged over batch and time."""
    dyn = categorical_kl(post_logits.detach(), prior_logits)
    rep = categorical_kl(post_logits, prior_logits.detach())
    return dyn.clamp(min=free_bits).mean(), rep.clamp(min=free_bits).mean(), dyn.detach().mean()
