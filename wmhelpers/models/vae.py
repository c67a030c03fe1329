"""CategoricalVAE (notebook Section 1), the observation model of BOTH world models:
    encoder  l = W * ConvEncoder(o)                     logits [..., 32, 32], unimix applied
    token    z = straight_through_sample(l)             1024-dim, 32 ones; gradient flows to l
    decoder  o_hat = ConvDecoder(z)                     reconstruction loss sum_pixels (o_hat - o)^2
"""

from __future__ import annotations

import torch
from torch import nn

from .latent import flat, mode_one_hot, straight_through_sample, unimix_logits
from .nets import ConvDecoder, ConvEncoder, autocast_context


class CategoricalVAE(nn.Module):
    def __init__(self, conv_widths=(16, 32, 64, 128), latent_vars: int = 32, latent_classes: int = 32,
                 unimix: float = 0.01, frame_size: int = 64, amp: str = "off"):
        super().__init__()
        self.latent_vars, self.latent_classes, self.unimix, self.amp = latent_vars, latent_classes, unimix, amp
        self.encoder = ConvEncoder(conv_widths, frame_size=frame_size)
        self.to_logits = nn.Linear(self.encoder.out_dim, latent_vars * latent_classes)
        self.decoder = ConvDecoder(latent_vars * latent_classes, conv_widths, frame_size=frame_size)

    def raw_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [..., 3, 64, 64] -> logits [..., V, K] before unimix (float32)."""
        with autocast_context(obs, self.amp):
            logits = self.to_logits(self.encoder(obs))
        return logits.float().reshape(*obs.shape[:-3], self.latent_vars, self.latent_classes)

    def mix(self, raw_logits: torch.Tensor) -> torch.Tensor:
        """Unimix log-probabilities: every class keeps probability >= unimix / K."""
        return unimix_logits(raw_logits, self.unimix)

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mix(self.raw_logits(obs))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Posterior mode as a flat one-hot token [..., V*K]."""
        return flat(mode_one_hot(self.logits(obs)))

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Straight-through one-hot sample, flat [..., V*K]."""
        return flat(straight_through_sample(logits, generator))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Unclamped decoder mean [..., 3, 64, 64]: what the reconstruction loss compares."""
        with autocast_context(z, self.amp):
            return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames in [0, 1]."""
        return self.decode_mean(z).clamp(0.0, 1.0)

    @staticmethod
    def recon_loss(mean: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Squared error summed over pixels and channels, averaged over frames (Gaussian NLL up to constants)."""
        return (mean - obs).pow(2).sum((-3, -2, -1)).mean()

    def loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Reconstruction loss of a straight-through sample: trains the encoder through the token."""
        z = self.sample(self.logits(obs))
        recon = self.recon_loss(self.decode_mean(z), obs)
        return recon, {"recon_loss": float(recon.detach())}
