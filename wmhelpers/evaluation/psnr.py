"""PSNR maths, in one place: whole-frame and changed-pixel PSNR, capped at the 8-bit quantization limit.

    whole-frame PSNR     10 log10(1 / MSE) over all pixels, frames in [0, 1]
    changed-pixel PSNR   the same over only the pixels whose true value differs from the last
                         context frame by more than a threshold (in any channel): where the
                         boxers move, i.e. where the dynamics live.
"""

from __future__ import annotations

import math

import torch

# Frames are stored as 8-bit values: rounding a continuous image to 256 levels already adds
# uniform noise of variance (1/255)^2 / 12 per value. An MSE below that measures nothing real,
# so a prediction is never scored as more accurate than the quantization of the frames
# themselves: PSNR_CAP_DB = 10 log10(12 * 255^2) = 58.9 dB. (A cap of 100 dB would let one
# identical frame, copy-last where nothing moved, lift a mean of ~29 dB windows by 71/N dB.)
QUANTIZATION_MSE = 1.0 / (12 * 255**2)
PSNR_CAP_DB = 10 * math.log10(1 / QUANTIZATION_MSE)


def mse_to_psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR = 10 log10(1 / MSE) for frames in [0, 1], capped at PSNR_CAP_DB (see QUANTIZATION_MSE)."""
    return 10.0 * torch.log10(1.0 / mse.clamp(min=QUANTIZATION_MSE))


def frame_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample over the last three dims (C, H, W), in float32."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels only (all channels); NaN where the mask is empty."""
    mask = mask.expand_as(target).float()
    count = mask.sum(dim=(-3, -2, -1))
    mse = ((pred.float() - target.float()).pow(2) * mask).sum(dim=(-3, -2, -1)) / count.clamp(min=1)
    return torch.where(count > 0, mse, torch.full_like(mse, float("nan")))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per sample for frames in [0, 1]:
    PSNR = 10 log10(1 / MSE), MSE over the last three dims (C, H, W); any leading dims are kept.
    A perfect prediction (or any with MSE below 8-bit quantization noise) gives PSNR_CAP_DB."""
    return mse_to_psnr(frame_mse(pred, target))


def changed_mask(target: torch.Tensor, last_context: torch.Tensor, threshold: float) -> torch.Tensor:
    """[..., 1, H, W] bool: pixels of the true frame that differ from the last context frame."""
    return ((target - last_context).abs().amax(dim=-3, keepdim=True) > threshold)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR over the masked pixels only (all channels), capped like `psnr`; NaN where the mask is empty."""
    return mse_to_psnr(masked_mse(pred, target, mask))
