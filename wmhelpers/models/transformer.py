"""Transformer world model (notebook Section 2), in the style of STORM.

Tokens interleave latents and actions, z_0, a_0, z_1, a_1, ..., z_{T-1}, a_{T-1}, and a causal
Transformer with RoPE and a sliding window of `window` (= 2 x seq_len) tokens reads them. The
hidden state at a_t has seen z_<=t, a_<=t (what the RSSM's h_{t+1} has seen); three heads read it:
    next-latent logits  p(z_{t+1} | z_<=t, a_<=t)   32 x 32 categorical
    reward r_t (squared error), continuation c_t = 1 - terminated_t (Bernoulli logit)
Imagination feeds each step's two new tokens against a static-shape ring-buffer KV cache
(`KVCache`), so a step has the same shapes at every horizon (CUDA-graph capturable).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .latent import unimix_logits
from .masking import EMPTY, attention_mask
from .nets import mlp
from .world_model import WorldModel


# ---- Rotary position embedding -----------------------------------------------------------------
def rope_angles(pos: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles theta_{p,i} = p * 10000^(-2i/dim), i < dim/2: each [L, dim/2]
    (once per pass, shared by every layer's queries and keys)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, device=pos.device, dtype=torch.float32) / half)
    angle = pos.to(torch.float32)[:, None] * freqs[None, :]
    return angle.cos(), angle.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE: rotate channel pairs (x_i, x_{i+d/2}) of x [B, H, L, d] by the angles behind cos, sin [L, d/2]."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


# ---- The key/value cache of imagination --------------------------------------------------------
class KVCache:
    """Keys and values of every layer in static-shape ring buffers of window + 1 slots, written in place:
    position p lives in slot p mod (window + 1), and `pos` [slots] (EMPTY: no token yet) builds the
    mask. `next_pos` is a device tensor, so stepping never asks the host for anything."""

    def __init__(self, keys: list, values: list, pos: torch.Tensor, next_pos: torch.Tensor):
        self.keys, self.values, self.pos, self.next_pos = keys, values, pos, next_pos

    @classmethod
    def empty(cls, layers: int, batch: int, heads: int, slots: int, head_dim: int,
              device, dtype=torch.float32) -> "KVCache":
        shape = (batch, heads, slots, head_dim)
        return cls([torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)],
                   [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)],
                   torch.full((slots,), EMPTY, device=device, dtype=torch.long),
                   torch.zeros((), device=device, dtype=torch.long))

    @property
    def slots(self) -> int:
        return self.pos.shape[0]

    def tensors(self) -> list:
        return [*self.keys, *self.values, self.pos, self.next_pos]

    def clone(self) -> "KVCache":
        return KVCache([k.clone() for k in self.keys], [v.clone() for v in self.values],
                       self.pos.clone(), self.next_pos.clone())

    def copy_(self, other: "KVCache") -> "KVCache":
        """Overwrite this cache's buffers with another's (same shapes), in place."""
        for mine, theirs in zip(self.tensors(), other.tensors()):
            mine.copy_(theirs)
        return self


# ---- The Transformer ---------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, window: int):
        super().__init__()
        self.heads, self.window, self.dropout = heads, window, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor, rope):
        """x [B, L, dim] -> rotated q, k and v, each [B, heads, L, dim/heads]."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return rotate(q, *rope), rotate(k, *rope), v

    def merge(self, y: torch.Tensor) -> torch.Tensor:
        """Heads [B, heads, L, d] -> output projection of the concatenated heads [B, L, heads*d]."""
        B, H, L, d = y.shape
        return self.proj(y.transpose(1, 2).reshape(B, L, H * d))

    def forward(self, x, rope, mask=None):
        """softmax(q k^T / sqrt(d) + mask) v over a whole sequence (mask None: plain causal) -> (y, (k, v)),
        the keys and values `prefill` caches."""
        q, k, v = self.project(x, rope)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=p)
        return self.merge(y), (k, v)

    def step(self, x, rope, mask, k_cache, v_cache, slot):
        """The same attention for new tokens only: write their keys and values into the ring
        (in place, at the slot indices `slot`), then attend to the whole ring under `mask`."""
        q, k, v = self.project(x, rope)
        k_cache.index_copy_(2, slot, k)
        v_cache.index_copy_(2, slot, v)
        p = self.dropout if self.training else 0.0
        return self.merge(F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask, dropout_p=p))

    def weights(self, x, rope, mask) -> torch.Tensor:
        """Explicit attention probabilities [B, heads, L, L] (for the attention-map figure only)."""
        q, k, _ = self.project(x, rope)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        return scores.masked_fill(~mask, float("-inf")).softmax(-1)


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, dropout: float, window: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout, window)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x, rope, mask=None):
        a, kv = self.attn(self.ln1(x), rope, mask)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv

    def step(self, x, rope, mask, k_cache, v_cache, slot):
        x = x + self.attn.step(self.ln1(x), rope, mask, k_cache, v_cache, slot)
        return x + self.mlp(self.ln2(x))


class TransformerDynamics(nn.Module):
    """Causal Transformer over interleaved latent/action tokens with next-latent, reward, cont heads."""

    def __init__(self, latent_vars: int, latent_classes: int, num_actions: int, dim: int = 128,
                 layers: int = 2, heads: int = 4, dropout: float = 0.1, window: int = 32,
                 hidden: int = 256, unimix: float = 0.01):
        super().__init__()
        self.latent_vars, self.latent_classes, self.unimix, self.window = latent_vars, latent_classes, unimix, window
        self.heads, self.head_dim = heads, dim // heads
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

    def run(self, x: torch.Tensor, pos: torch.Tensor, maps: list | None = None):
        """The blocks over a whole token sequence x at positions pos -> (LN(h), [(k, v) per layer]).
        With a list `maps`, each layer's attention probabilities are appended to it."""
        rope = rope_angles(pos, self.head_dim)
        mask = attention_mask(pos, pos, self.window)
        # within the window the sliding mask is just the causal one, and SDPA has a fast path for it
        causal = len(pos) <= self.window
        kv = []
        for block in self.blocks:
            if maps is not None:
                maps.append(block.attn.weights(block.ln1(x), rope, mask))
            x, layer_kv = block(x, rope, None if causal else mask)
            kv.append(layer_kv)
        return self.ln_f(x), kv

    def readout(self, h: torch.Tensor) -> dict:
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
        return self.readout(h[:, 1::2])

    # ---- imagination with the KV cache ------------------------------------------------------
    def new_cache(self, batch: int, device, dtype=torch.float32) -> KVCache:
        """An empty cache (no token yet; the next token is at position 0)."""
        return KVCache.empty(len(self.blocks), batch, self.heads, self.window + 1, self.head_dim, device, dtype)

    def prefill(self, z: torch.Tensor, action: torch.Tensor) -> KVCache:
        """Run the tokens z_0, a_0, ..., z_{T-1}, a_{T-1} once; cache the keys/values the next tokens can read."""
        x = self.tokens(z, action)
        L = x.shape[1]
        pos = torch.arange(L, device=x.device)
        _, kv = self.run(x, pos)
        cache = self.new_cache(x.shape[0], x.device, kv[0][0].dtype)
        keep = pos[-cache.slots:]  # older tokens are out of every later query's window
        slot = keep % cache.slots  # position p lives in slot p mod slots
        for (k, v), k_cache, v_cache in zip(kv, cache.keys, cache.values):
            k_cache.index_copy_(2, slot, k[:, :, -cache.slots:])
            v_cache.index_copy_(2, slot, v[:, :, -cache.slots:])
        cache.pos.index_copy_(0, slot, keep)
        cache.next_pos.fill_(L)
        return cache

    def step(self, cache: KVCache, z: torch.Tensor, action: torch.Tensor) -> dict:
        """Feed only the two new tokens (z_t [B, D], a_t [B]) at cache.next_pos, attending to the cache,
        which they are written into in place (no host sync: capturable) -> the heads read at a_t."""
        x = self.tokens(z[:, None], action[:, None])
        q_pos = cache.next_pos + torch.arange(2, device=x.device)
        slot = q_pos % cache.slots
        cache.pos.index_copy_(0, slot, q_pos)  # before the mask: a token attends to itself
        mask = attention_mask(q_pos, cache.pos, self.window)
        rope = rope_angles(q_pos, self.head_dim)
        for block, k_cache, v_cache in zip(self.blocks, cache.keys, cache.values):
            x = block.step(x, rope, mask, k_cache, v_cache, slot)
        cache.next_pos.add_(2)
        return self.readout(self.ln_f(x[:, -1]))

    @torch.no_grad()
    def attention_maps(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Attention probabilities [layers, B, heads, 2T, 2T] over one sequence (eval mode)."""
        x = self.tokens(z, action)
        maps: list = []
        self.run(x, torch.arange(x.shape[1], device=x.device), maps)
        return torch.stack(maps)


# ---- The world model ---------------------------------------------------------------------------
class TransformerWorldModel(WorldModel):
    """CategoricalVAE + TransformerDynamics. Posterior q(z_t | o_t) is the encoder alone (STORM)."""

    kind, rebuild_command = "transformer", "re-run the notebook (Section 3 trains and saves it)"

    @classmethod
    def config_from(cls, cfg, num_actions: int) -> dict:
        # the window in TOKENS: 2 per step, so exactly one training sequence of cfg.seq_len steps
        return super().config_from(cfg, num_actions) | dict(
            tf_layers=cfg.tf_layers, tf_dim=cfg.tf_dim, tf_heads=cfg.tf_heads, tf_dropout=cfg.tf_dropout,
            window=2 * cfg.seq_len)

    def __init__(self, config: dict):
        super().__init__(config)
        c = self.config
        self.dynamics = TransformerDynamics(
            c["latent_vars"], c["latent_classes"], c["num_actions"], c["tf_dim"], c["tf_layers"], c["tf_heads"],
            c["tf_dropout"], c["window"], c["hidden"], c["unimix"],
        )

    def teacher_forced(self, obs, action, sample=True, generator=None) -> dict:
        post = self.vae.logits(obs)
        z = self.vae.sample(post, generator) if sample else self._pick(post, False, None)
        out = self.dynamics(z, action)
        return {"post_logits": post, "latent": z, **out}

    @torch.no_grad()
    def observe(self, obs: torch.Tensor, actions: torch.Tensor) -> dict:
        """Context obs [B, C, 3, 64, 64] and the C-1 actions between them -> state: the cache holds
        z_0, a_0, ..., z_{C-2}, a_{C-2}; z_{C-1} waits for the first action given to `imagine`."""
        latents = self.encode(obs)
        B, C = latents.shape[:2]
        if actions.shape[1] != C - 1:
            raise ValueError(f"observe needs {C - 1} actions between {C} context frames, got {actions.shape[1]}")
        if C > 1:
            cache = self.dynamics.prefill(latents[:, :-1], actions)
        else:
            cache = self.dynamics.new_cache(B, latents.device, next(self.dynamics.parameters()).dtype)
        return {"cache": cache, "latent": latents[:, -1], "latents": latents}

    def imagine_step(self, state: dict, action: torch.Tensor) -> dict:
        """Feed (z_t, a_t) into the KV cache (in place); the heads read at a_t predict z_{t+1}."""
        return self.dynamics.step(state["cache"], state["latent"], action)

    def next_token_logits(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.dynamics(latents, actions)["next_logits"]

