"""What the two world models share: the observation model, the loss, the imagination loop.

A subclass supplies its backbone through teacher_forced, observe, imagine_step and
next_token_logits. The loss (DreamerV3 / STORM weights):
    L = recon + reward + cont + 0.5 * max(1, KL(sg(q_{t+1}) || p_{t+1}))
                              + 0.1 * max(1, KL(q_{t+1} || sg(p_{t+1})))
with q_{t+1} the posterior of frame t+1 and p_{t+1} the backbone's prediction of it made at step t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import cuda_graphs
from .latent import flat, kl_losses, mode_one_hot, sample_one_hot
from .vae import CategoricalVAE

IMAGINED = ("latent", "reward", "cont", "next_logits")  # what imagination returns per step


class WorldModel(nn.Module):
    """A world model built from its config, a plain dict (a checkpoint's `model_config`) that
    `config_from` makes from an ExperimentConfig; a subclass adds its backbone's numbers."""

    kind = "abstract"
    # how to rebuild a checkpoint of this kind (named in checkpoint mismatch errors)
    rebuild_command = "re-run the notebook"

    def __init__(self, config: dict):
        super().__init__()
        self.config = c = dict(config)
        self.num_actions = c["num_actions"]
        self.free_bits, self.kl_dyn_scale, self.kl_rep_scale = c["free_bits"], c["kl_dyn_scale"], c["kl_rep_scale"]
        self.vae = CategoricalVAE(tuple(c["conv_widths"]), c["latent_vars"], c["latent_classes"], c["unimix"],
                                  c["frame_size"], c["amp"])

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def config_from(cls, cfg, num_actions: int) -> dict:
        """The model config (plain types) an ExperimentConfig asks for: the observation model and
        the loss, shared by every world model."""
        return dict(num_actions=num_actions, conv_widths=list(cfg.conv_widths), latent_vars=cfg.latent_vars,
                    latent_classes=cfg.latent_classes, unimix=cfg.unimix, free_bits=cfg.free_bits,
                    kl_dyn_scale=cfg.kl_dyn_scale, kl_rep_scale=cfg.kl_rep_scale, hidden=cfg.hidden,
                    frame_size=cfg.frame_size, amp=cfg.amp)

    @classmethod
    def from_config(cls, cfg, num_actions: int, device: torch.device | str | None = None) -> "WorldModel":
        """A fresh model sized by the ExperimentConfig, initialised from cfg.train_seed, on cfg's device."""
        torch.manual_seed(cfg.train_seed)
        return cls(cls.config_from(cfg, num_actions)).to(device or cfg.resolve_device())

    def model_config(self) -> dict:
        """The plain dict the model was built from: enough to rebuild it (`cls(model_config)`)."""
        return dict(self.config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- the backbone's part -------------------------------------------------------------------
    def teacher_forced(self, obs: torch.Tensor, action: torch.Tensor, sample: bool = True,
                       generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError

    def observe(self, obs: torch.Tensor, actions: torch.Tensor) -> dict:
        raise NotImplementedError

    def imagine_step(self, state: dict, action: torch.Tensor) -> dict:
        """One imagined step from `state` (latent z_t and the backbone's memory) with action a_t [B]:
        advance the memory in place of `state`, return the heads read after a_t: next_logits
        (p(z_{t+1}), [B, V, K]), reward r_t and cont c_t [B]. `imagine` then picks z_{t+1}."""
        raise NotImplementedError

    def next_token_logits(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The dynamics alone on given latents [B, T, D] and actions [B, T]: logits [B, T, V, K] of
        z_{t+1} read after a_t (no encoder, no decoder; Section 6 trains the backbones through it)."""
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------------
    @torch.no_grad()
    def imagine(self, state: dict, actions: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None) -> dict:
        """Open loop from `state` with actions a_k [B, H]: the backbone reads (z_k, a_k), predicts
        p(z_{k+1}), and its mode (or a sample from `generator`) is fed back. Returns latent [B, H, D],
        reward and cont [B, H], next_logits [B, H, V, K] and the "state" after the last action; the
        given state is left as it was. Mode latents on CUDA replay a captured graph."""
        step = lambda s, a: self._imagine_one(s, a, sample, generator)  # noqa: E731
        graphs = cuda_graphs.IMAGINATION_GRAPHS
        if not sample and not self.training and graphs.usable(self.device):
            out = graphs.imagine(self, step, state, actions)
            if out is not None:
                return out
        state = {k: v.clone() for k, v in state.items()}
        outs = [step(state, actions[:, k]) for k in range(actions.shape[1])]
        return {**{key: torch.stack([o[key] for o in outs], 1) for key in IMAGINED}, "state": state}

    def _imagine_one(self, state: dict, action: torch.Tensor, sample: bool, generator) -> dict:
        """One step of the loop: the backbone's step, then z_{t+1} (mode or sample) into state["latent"]."""
        head = self.imagine_step(state, action)
        state["latent"] = self._pick(head["next_logits"], sample, generator)
        return {key: state["latent"] if key == "latent" else head[key] for key in IMAGINED}

    def loss_terms(self, batch: dict, generator: torch.Generator | None = None,
                   sample: bool = True) -> tuple[torch.Tensor, dict]:
        """Total loss on a batch and each term as a detached 0-dim device tensor (nothing read back: the
        step stays capturable):
            L = L_recon + L_reward + L_cont + kl_dyn_scale * L_dyn + kl_rep_scale * L_rep
        Latents are sampled from `generator` (validation's own) or the global RNG; sample=False
        takes the modes."""
        obs = batch["obs"].to(self.device)
        action = batch["action"].to(self.device)
        out = self.teacher_forced(obs, action, sample=sample, generator=generator)
        recon = self.vae.recon_loss(self.vae.decode_mean(out["latent"]), obs)
        # next_logits[:, t] is the prediction of frame t+1's latent made at step t
        dyn, rep, kl = kl_losses(out["post_logits"][:, 1:], out["next_logits"][:, :-1], self.free_bits)
        reward = F.mse_loss(out["reward"], batch["reward"].to(self.device))
        cont = F.binary_cross_entropy_with_logits(out["cont_logit"], batch["cont"].to(self.device))
        total = recon + reward + cont + self.kl_dyn_scale * dyn + self.kl_rep_scale * rep
        terms = {"total": total, "recon_loss": recon, "dyn_loss": dyn, "rep_loss": rep,
                 "reward_loss": reward, "cont_loss": cont, "kl": kl}
        return total, {k: v.detach() for k, v in terms.items()}

    def loss(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """`loss_terms` with each term as a Python float, for reading by hand (one host sync per term)."""
        total, terms = self.loss_terms(batch, generator)
        return total, {k: float(v) for k, v in terms.items()}

    def encode(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """Posterior-mode latents [..., D] of real frames (see the subclass for what it reads)."""
        return self.vae.encode(obs)

    @torch.no_grad()
    def one_step(self, obs: torch.Tensor, actions: torch.Tensor) -> dict:
        """Teacher-forced one-step predictions along real frames: "latent", the mode latents
        [B, T-1, D] of frames 1..T-1, each predicted from the real frames and actions before it;
        "reward", r_hat_t [B, T], read after each action a_t."""
        out = self.teacher_forced(obs, actions, sample=False)
        return {"latent": flat(mode_one_hot(out["next_logits"][:, :-1])), "reward": out["reward"]}

    def predict_next(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The mode latents of `one_step`: [B, T-1, D]."""
        return self.one_step(obs, actions)["latent"]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [..., D] -> frames [..., 3, 64, 64] in [0, 1]."""
        return self.vae.decode(latents)

    def _pick(self, logits: torch.Tensor, sample: bool, generator) -> torch.Tensor:
        """Mode (argmax) or sampled one-hot latent, flat [..., D]."""
        if sample:
            return flat(sample_one_hot(logits, generator))  # exact 0/1: nothing to differentiate here
        return flat(mode_one_hot(logits))
