"""RSSM world model: the P03 baseline whose GRU the Transformer replaces (same index convention):
    deterministic path   h_{t+1} = GRU(h_t, [z_t, a_t])            (h_0 = 0)
    prior                p(z_{t+1} | h_{t+1})                      used in imagination
    posterior            log q(z_t | h_t, o_t) = unimix(W e_t + U h_t),  U = 0 at initialisation
Reward r_t and continuation c_t are read from h_{t+1}. The residual posterior (U = 0 at first)
avoids the posterior-collapse plateau of an MLP posterior (README); the decoder reads z_t only,
like the Transformer model's, so the observation models have the same shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .latent import unimix_logits
from .nets import mlp
from .world_model import WorldModel


class RSSMWorldModel(WorldModel):
    kind, rebuild_command = "rssm", "python -m wmhelpers train-rssm"  # the checkpoint kind; how to remake one

    @classmethod
    def config_from(cls, cfg, num_actions: int) -> dict:
        return super().config_from(cfg, num_actions) | dict(deter=cfg.rssm_deter)

    def __init__(self, config: dict):
        super().__init__(config)
        c = self.config
        V, K, hidden, num_actions = c["latent_vars"], c["latent_classes"], c["hidden"], c["num_actions"]
        self.deter = deter = c["deter"]
        self.img_in = nn.Sequential(nn.Linear(V * K + num_actions, hidden), nn.LayerNorm(hidden), nn.SiLU())
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_head = mlp(deter, hidden, V * K)
        self.post_from_h = nn.Linear(deter, V * K)
        nn.init.zeros_(self.post_from_h.weight)
        nn.init.zeros_(self.post_from_h.bias)
        self.reward_head = mlp(deter, hidden, 1)
        self.cont_head = mlp(deter, hidden, 1)

    # ---- the named steps -------------------------------------------------------------------
    def initial(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.deter, device=self.device)

    def img_step(self, h: torch.Tensor, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """h_{t+1} = GRU(h_t, [z_t, onehot(a_t)])."""
        a = F.one_hot(action, self.num_actions).to(z.dtype)
        return self.gru(self.img_in(torch.cat([z, a], -1)), h)

    def prior(self, h: torch.Tensor) -> torch.Tensor:
        """log p(z | h) [..., V, K] with unimix."""
        return unimix_logits(self.prior_head(h).view(*h.shape[:-1], self.vae.latent_vars, -1), self.vae.unimix)

    def posterior(self, h: torch.Tensor, raw_enc_logits: torch.Tensor) -> torch.Tensor:
        """log q(z | h, o) [B, V, K] = unimix(encoder logits + U h)."""
        correction = self.post_from_h(h).view_as(raw_enc_logits)
        return unimix_logits(raw_enc_logits + correction, self.vae.unimix)

    def _read(self, h: torch.Tensor) -> dict:
        cont_logit = self.cont_head(h).squeeze(-1)
        return {"next_logits": self.prior(h), "reward": self.reward_head(h).squeeze(-1),
                "cont_logit": cont_logit, "cont": torch.sigmoid(cont_logit)}

    def _filter(self, obs, action, sample, generator) -> dict:
        """Posterior pass over a real window: post_logits, latent, h (before each step) and h_next
        (after each action), each stacked over time. Only the recurrence is a Python loop; the
        conv encoder runs on all frames at once and the heads on all states at once."""
        raw = self.vae.raw_logits(obs)
        h = self.initial(obs.shape[0])
        hs, h_next, posts, zs = [], [], [], []
        for t in range(obs.shape[1]):
            hs.append(h)
            post = self.posterior(h, raw[:, t])
            z = self.vae.sample(post, generator) if sample else self._pick(post, False, None)
            h = self.img_step(h, z, action[:, t])
            posts.append(post)
            zs.append(z)
            h_next.append(h)
        return {"post_logits": torch.stack(posts, 1), "latent": torch.stack(zs, 1),
                "h": torch.stack(hs, 1), "h_next": torch.stack(h_next, 1)}

    # ---- the interface -------------------------------------------------------------------------
    def teacher_forced(self, obs, action, sample=True, generator=None) -> dict:
        f = self._filter(obs, action, sample, generator)
        return {"post_logits": f["post_logits"], "latent": f["latent"], **self._read(f["h_next"])}

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior-mode latents [B, T, D]. The posterior reads h_t, so it needs the actions between
        the frames; without them (a single frame, say) NOOP (action 0) stands in."""
        single = obs.dim() == 4
        if single:
            obs = obs[:, None]
        B, T = obs.shape[:2]
        full = torch.zeros(B, T, dtype=torch.long, device=obs.device)
        if actions is not None:
            full[:, : actions.shape[1]] = actions[:, :T]
        z = self._filter(obs, full, False, None)["latent"]
        return z[:, 0] if single else z

    @torch.no_grad()
    def observe(self, obs: torch.Tensor, actions: torch.Tensor) -> dict:
        """Filter the context; the state is (h_{C-1}, z_{C-1}) before the first imagined action."""
        C = obs.shape[1]
        if actions.shape[1] != C - 1:
            raise ValueError(f"observe needs {C - 1} actions between {C} context frames, got {actions.shape[1]}")
        pad = actions.new_zeros(actions.shape[0], 1)  # (also when the context is one frame)
        f = self._filter(obs, torch.cat([actions, pad], 1), False, None)
        return {"h": f["h"][:, -1], "latent": f["latent"][:, -1], "latents": f["latent"]}

    def next_token_logits(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """h_{t+1} = GRU(h_t, [z_t, a_t]) from h_0 = 0 over the given latents; the prior read at each."""
        h = self.initial(latents.shape[0])
        priors = []
        for t in range(latents.shape[1]):
            h = self.img_step(h, latents[:, t], actions[:, t])
            priors.append(self.prior(h))
        return torch.stack(priors, 1)

    def imagine_step(self, state: dict, action: torch.Tensor) -> dict:
        """h_{t+1} = GRU(h_t, [z_t, a_t]) into state["h"]; the prior p(z_{t+1} | h_{t+1}) and heads read at it."""
        state["h"] = self.img_step(state["h"], state["latent"], action)
        return self._read(state["h"])
