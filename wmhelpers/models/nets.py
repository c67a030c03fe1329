"""Building blocks shared by both world models: the conv encoder/decoder and small MLPs.

One class each, used by the RSSM and the Transformer world model alike, so the observation
model cannot differ between them.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..device import resolve_amp_dtype


def autocast_context(x: torch.Tensor, amp: str):
    """bf16 autocast for the conv stacks when amp="bf16" (device.resolve_amp_dtype), else nothing."""
    dtype = resolve_amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, dtype=dtype)


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: the statistics must not depend on the batch, so a model behaves
    # the same in training, in evaluation on 256 windows and in a single imagined step.
    return nn.GroupNorm(min(8, channels), channels)


class ConvEncoder(nn.Module):
    """64x64x3 frame -> flat embedding: four k4 s2 convolutions (64 -> 32 -> 16 -> 8 -> 4 pixels)."""

    def __init__(self, widths=(16, 32, 64, 128), in_channels: int = 3, frame_size: int = 64):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 4, stride=2, padding=1), _norm(w), nn.SiLU()]
            c = w
        self.net = nn.Sequential(*layers)
        self.out_dim = c * (frame_size // 2 ** len(widths)) ** 2

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [..., 3, H, W] in [0, 1] -> [..., out_dim]."""
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:])
        return self.net(x - 0.5).flatten(1).reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """Flat latent -> 64x64x3 frame: a linear map to 4x4 then four k4 s2 transposed convolutions."""

    def __init__(self, in_dim: int, widths=(16, 32, 64, 128), out_channels: int = 3, frame_size: int = 64):
        super().__init__()
        widths = list(widths)
        self.start = frame_size // 2 ** len(widths)
        self.top = widths[-1]
        self.fc = nn.Linear(in_dim, self.top * self.start**2)
        layers = []
        chans = widths[::-1] + [out_channels]
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            layers += [_norm(a), nn.SiLU(), nn.ConvTranspose2d(a, b, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., in_dim] -> mean frame [..., 3, H, W] (unclamped; the loss sees the raw mean)."""
        lead = z.shape[:-1]
        x = self.fc(z.reshape(-1, z.shape[-1])).reshape(-1, self.top, self.start, self.start)
        x = self.net(x)
        return (x.float() + 0.5).reshape(*lead, *x.shape[1:])


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 1) -> nn.Sequential:
    """Linear -> LayerNorm -> SiLU (x layers) -> Linear: the small heads of both world models."""
    mods, d = [], in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)
