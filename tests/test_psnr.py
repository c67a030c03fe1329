"""psnr, masked_psnr and changed_mask against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from wmhelpers.evaluate import PSNR_CAP_DB, changed_mask, masked_psnr, psnr


def test_psnr_by_hand():
    target = torch.zeros(1, 3, 2, 2)
    pred = target.clone()
    pred[0, 0, 0, 0] = 0.5  # one of 12 values off by 0.5 -> MSE = 0.25 / 12
    pred[0, 2, 1, 1] = 0.1  # plus 0.01 / 12
    mse = (0.25 + 0.01) / 12
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)


def test_psnr_is_per_sample_and_keeps_leading_dims():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 5, 3, 8, 8, generator=g)
    target = torch.rand(2, 5, 3, 8, 8, generator=g)
    out = psnr(pred, target)
    assert out.shape == (2, 5)
    for i in range(2):
        for j in range(5):
            mse = ((pred[i, j] - target[i, j]) ** 2).mean().item()
            assert out[i, j].item() == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)
    # a single frame gives a scalar
    assert psnr(pred[0, 0], target[0, 0]).shape == ()


def test_psnr_constant_offset():
    target = torch.full((4, 3, 16, 16), 0.2)
    assert torch.allclose(psnr(target + 0.1, target), torch.full((4,), 20.0), atol=1e-3)  # MSE 0.01 -> 20 dB


def test_identical_frames_give_finite_cap():
    x = torch.rand(3, 3, 8, 8)
    out = psnr(x, x.clone())
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full((3,), PSNR_CAP_DB))
    # the cap is above any real error
    y = x.clone()
    y[0, 0, 0, 0] += 1e-3
    assert psnr(y, x)[0] < out[0]


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(torch.zeros(2, 3, 8, 8), torch.zeros(3, 8, 8))


def test_psnr_computes_in_float32_for_low_precision_input():
    target = torch.full((1, 3, 4, 4), 0.5, dtype=torch.float64)
    pred = (target + 0.1).to(torch.bfloat16)
    mse = ((pred.double() - target) ** 2).mean().item()
    assert psnr(pred, target).item() == pytest.approx(10 * math.log10(1 / mse), abs=1e-3)


def test_masked_psnr_equals_psnr_over_masked_pixels():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 4, 3, 8, 8, generator=g)
    target = torch.rand(2, 4, 3, 8, 8, generator=g)
    mask = torch.rand(2, 4, 1, 8, 8, generator=g) > 0.6
    out = masked_psnr(pred, target, mask)
    assert out.shape == (2, 4)
    for i in range(2):
        for j in range(4):
            m = mask[i, j, 0]  # [8, 8], every channel of a masked pixel counts
            diff = (pred[i, j][:, m] - target[i, j][:, m]) ** 2
            mse = diff.mean().item()
            assert out[i, j].item() == pytest.approx(10 * math.log10(1 / mse), abs=1e-4)


def test_masked_psnr_with_full_mask_is_psnr():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 3, 8, 8, generator=g)
    full = torch.ones(3, 1, 8, 8, dtype=torch.bool)
    assert torch.allclose(masked_psnr(pred, target, full), psnr(pred, target), atol=1e-4)


def test_masked_psnr_ignores_unmasked_errors():
    target = torch.zeros(1, 3, 4, 4)
    pred = target.clone()
    pred[..., 0, :] = 1.0  # large error in row 0 only
    pred[..., 1, :] = 0.1
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 1, :] = True
    assert masked_psnr(pred, target, mask).item() == pytest.approx(20.0, abs=1e-3)


def test_empty_mask_gives_nan_and_others_unaffected():
    pred, target = torch.full((2, 3, 4, 4), 0.6), torch.full((2, 3, 4, 4), 0.5)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[1, 0, 2, 2] = True
    out = masked_psnr(pred, target, mask)
    assert math.isnan(out[0].item())
    assert out[1].item() == pytest.approx(20.0, abs=1e-3)


def test_changed_mask_by_hand():
    last = torch.zeros(1, 3, 2, 2)
    target = last.clone()
    target[0, 1, 0, 0] = 0.5  # one channel changed a lot
    target[0, 2, 1, 1] = 0.01  # below the threshold
    target[0, 0, 0, 1] = -0.2  # a decrease counts too
    mask = changed_mask(target, last, threshold=8 / 255)
    assert mask.shape == (1, 1, 2, 2) and mask.dtype == torch.bool
    assert mask[0, 0].tolist() == [[True, True], [False, False]]
