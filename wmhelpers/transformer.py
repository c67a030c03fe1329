"""Transformer world model (notebook Section 2), in the style of STORM.

Sequence: the tokens of a window interleave latents and actions,
    z_0, a_0, z_1, a_1, ..., z_{T-1}, a_{T-1}        (2T tokens, token position p = 2t or 2t+1)
and a causal Transformer reads them. The hidden state at the action token a_t has seen
z_0..z_t and a_0..a_t, exactly what the RSSM's h_{t+1} has seen, so three heads read it:
    next-latent logits  p(z_{t+1} | z_<=t, a_<=t)     32 x 32 categorical (the "next token")
    reward              r_t (squared error)
    continuation        c_t = 1 - terminated_t (Bernoulli logit)

Positions: rotary embeddings (RoPE) on queries and keys, plus a sliding attention window of
`window` tokens (default 2 x the training sequence length). RoPE makes attention depend only
on the distance between two tokens; the window caps that distance at what training showed.
So a rollout longer than the training sequences (context 8 + horizon 10 = 36 tokens, trained
on 32) never meets a distance it has not learnt, and the KV cache only keeps `window` entries.

Imagination uses a true key/value cache: each imagined step feeds only its two new tokens
(z_t, a_t) and attends to the cached keys and values of every layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .latent import unimix_logits
from .nets import mlp
from .world_model import WorldModel, register_world_model


def rotary(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """RoPE: rotate pairs of channels of x [B, H, L, d] by angle pos * 10000^(-2i/d)."""
    half = x.shape[-1] // 2
    freqs = torch.pow(10000.0, -torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = pos.to(torch.float32)[:, None] * freqs[None, :]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """Boolean [Lq, Lk]: True where query may attend key: causal and within the sliding window."""
    dist = q_pos[:, None] - k_pos[None, :]
    return (dist >= 0) & (dist < window)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, window: int):
        super().__init__()
        self.heads, self.window, self.dropout = heads, window, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor, pos: torch.Tensor):
        """x [B, L, dim] -> rotated q, k and v, each [B, heads, L, dim/heads]."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return rotary(q, pos), rotary(k, pos), v

    def forward(self, x, pos, past=None, use_cache=False):
        """softmax(q k^T / sqrt(d) + mask) v via F.scaled_dot_product_attention.

        past: (k, v, k_pos) of earlier tokens of this layer, or None. Returns (y, present) where
        present holds the last `window` keys/values (None unless use_cache).
        """
        q, k, v = self.project(x, pos)
        k_pos = pos
        if past is not None:
            k, v, k_pos = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2), torch.cat([past[2], pos])
        p = self.dropout if self.training else 0.0
        if past is None and len(pos) <= self.window:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)  # fast path
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask(pos, k_pos, self.window), dropout_p=p)
        present = (k[:, :, -self.window:], v[:, :, -self.window:], k_pos[-self.window:]) if use_cache else None
        B, H, L, d = y.shape
        return self.proj(y.transpose(1, 2).reshape(B, L, H * d)), present

    def weights(self, x, pos) -> torch.Tensor:
        """Explicit attention probabilities [B, heads, L, L] (for the attention-map figure only)."""
        q, k, _ = self.project(x, pos)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~attention_mask(pos, pos, self.window), float("-inf"))
        return scores.softmax(-1)


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float, window: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout, window)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x, pos, past=None, use_cache=False):
        a, present = self.attn(self.ln1(x), pos, past, use_cache)
        x = x + a
        return x + self.mlp(self.ln2(x)), present


class TransformerDynamics(nn.Module):
    """Causal Transformer over interleaved latent/action tokens with next-latent, reward, cont heads."""

    def __init__(self, latent_vars: int, latent_classes: int, num_actions: int, dim: int = 128,
                 layers: int = 2, heads: int = 4, dropout: float = 0.1, window: int = 32,
                 hidden: int = 256, unimix: float = 0.01):
        super().__init__()
        self.latent_vars, self.latent_classes, self.unimix, self.window = latent_vars, latent_classes, unimix, window
        self.z_embed = nn.Sequential(nn.Linear(latent_vars * latent_classes, dim), nn.LayerNorm(dim))
        self.a_embed = nn.Embedding(num_actions, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout, window) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.next_head = mlp(dim, hidden, latent_vars * latent_classes)
        self.reward_head = mlp(dim, hidden, 1)
        self.cont_head = mlp(dim, hidden, 1)

    def tokens(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """z [B, T, D], action [B, T] -> interleaved embeddings [B, 2T, dim]: z_0, a_0, z_1, a_1, ..."""
        zt, at = self.z_embed(z), self.a_embed(action)
        return torch.stack([zt, at], dim=2).flatten(1, 2)

    def run(self, x, pos, cache=None, use_cache=False):
        """The blocks over token embeddings x at absolute positions pos; cache: one `past` per layer."""
        present = []
        for i, block in enumerate(self.blocks):
            x, p = block(x, pos, None if cache is None else cache[i], use_cache)
            present.append(p)
        return self.ln_f(x), (present if use_cache else None)

    def heads(self, h: torch.Tensor) -> dict:
        """Read the hidden state of action tokens: next-latent logits (unimix), reward, cont."""
        logits = self.next_head(h).view(*h.shape[:-1], self.latent_vars, self.latent_classes)
        cont_logit = self.cont_head(h).squeeze(-1)
        return {
            "next_logits": unimix_logits(logits, self.unimix),
            "reward": self.reward_head(h).squeeze(-1),
            "cont_logit": cont_logit,
            "cont": torch.sigmoid(cont_logit),
        }

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> dict:
        """All steps at once (teacher forcing). Index t of every output is read at token a_t."""
        x = self.tokens(z, action)
        h, _ = self.run(x, torch.arange(x.shape[1], device=x.device))
        return self.heads(h[:, 1::2])

    def prefill(self, z: torch.Tensor, action: torch.Tensor):
        """Run the tokens z_0, a_0, ..., z_{T-1}, a_{T-1} once and return (cache, next position)."""
        x = self.tokens(z, action)
        _, cache = self.run(x, torch.arange(x.shape[1], device=x.device), use_cache=True)
        return cache, x.shape[1]

    def step(self, cache, position: int, z: torch.Tensor, action: torch.Tensor):
        """Feed only the two new tokens (z_t, a_t) at `position`, attending to the cache.

        z [B, D], action [B] -> (heads at a_t, new cache). The old cache is not modified.
        """
        x = self.tokens(z[:, None], action[:, None])
        pos = torch.arange(position, position + 2, device=x.device)
        h, cache = self.run(x, pos, cache, use_cache=True)
        return self.heads(h[:, -1]), cache

    @torch.no_grad()
    def attention_maps(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Attention probabilities [layers, B, heads, 2T, 2T] over one sequence (eval mode)."""
        x = self.tokens(z, action)
        pos = torch.arange(x.shape[1], device=x.device)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.weights(block.ln1(x), pos))
            x, _ = block(x, pos)
        return torch.stack(maps)


@register_world_model
class TransformerWorldModel(WorldModel):
    """CategoricalVAE + TransformerDynamics. Posterior q(z_t | o_t) is the encoder alone (STORM)."""

    kind = "transformer"
    rebuild_command = "re-run the notebook (Section 3 trains and saves it)"

    def __init__(self, num_actions: int, tf_layers: int = 2, tf_dim: int = 128, tf_heads: int = 4,
                 tf_dropout: float = 0.1, window: int = 32, **shared):
        super().__init__(num_actions, **shared)
        mc = self._model_config
        self.dynamics = TransformerDynamics(
            mc["latent_vars"], mc["latent_classes"], num_actions, tf_dim, tf_layers, tf_heads,
            tf_dropout, window, mc["hidden"], mc["unimix"],
        )
        self._model_config.update(tf_layers=tf_layers, tf_dim=tf_dim, tf_heads=tf_heads,
                                  tf_dropout=tf_dropout, window=window)

    @classmethod
    def backbone_kwargs(cls, cfg) -> dict:
        return dict(tf_layers=cfg.tf_layers, tf_dim=cfg.tf_dim, tf_heads=cfg.tf_heads,
                    tf_dropout=cfg.tf_dropout, window=2 * cfg.seq_len)

    def teacher_forced(self, obs, action, sample=True, generator=None) -> dict:
        post = self.vae.logits(obs)
        z = self.vae.sample(post, generator) if sample else self._pick(post, False, None)
        out = self.dynamics(z, action)
        return {"post_logits": post, "latent": z, **out}

    @torch.no_grad()
    def observe(self, obs: torch.Tensor, actions: torch.Tensor) -> dict:
        """Context obs [B, C, 3, 64, 64] and the C-1 actions between them -> state.

        The cache holds z_0, a_0, ..., z_{C-2}, a_{C-2}; z_{C-1} waits for its action, which is
        the first action given to `imagine`."""
        latents = self.encode(obs)
        C = latents.shape[1]
        if actions.shape[1] != C - 1:
            raise ValueError(f"observe needs {C - 1} actions between {C} context frames, got {actions.shape[1]}")
        if C > 1:
            cache, position = self.dynamics.prefill(latents[:, :-1], actions)
        else:
            cache, position = None, 0
        return {"cache": cache, "position": position, "latent": latents[:, -1], "latents": latents}

    @torch.no_grad()
    def imagine(self, state: dict, actions: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None) -> dict:
        """Open loop: at step k feed (z_k, a_k), read p(z_{k+1}), pick the mode (or a sample)."""
        cache, position, z = state["cache"], state["position"], state["latent"]
        outs = []
        for k in range(actions.shape[1]):
            head, cache = self.dynamics.step(cache, position, z, actions[:, k])
            position += 2
            z = self._pick(head["next_logits"], sample, generator)
            outs.append(dict(head, latent=z))
        return {key: torch.stack([o[key] for o in outs], 1) for key in ("latent", "reward", "cont", "next_logits")}
