"""psnr, masked_psnr and changed_mask against values worked out by hand (no formula re-typed)."""

from __future__ import annotations

import math

import pytest
import torch

from wmhelpers.evaluation.psnr import PSNR_CAP_DB, QUANTIZATION_MSE, changed_mask, masked_psnr, psnr


def test_psnr_by_hand():
    target = torch.zeros(1, 3, 2, 2)
    pred = target.clone()
    pred[0, 0, 0, 0] = 0.5  # one of 12 values off by 0.5 -> MSE = 0.25 / 12
    pred[0, 2, 1, 1] = 0.1  # plus 0.01 / 12: MSE = 0.26 / 12, PSNR = 10 log10(12 / 0.26) = 16.642 dB
    assert psnr(pred, target).item() == pytest.approx(16.6421, abs=1e-3)


def test_psnr_of_a_constant_offset():
    target = torch.full((4, 3, 16, 16), 0.2)
    assert torch.allclose(psnr(target + 0.1, target), torch.full((4,), 20.0), atol=1e-3)  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(target - 0.01, target), torch.full((4,), 40.0), atol=1e-3)  # sign does not matter


def test_psnr_is_per_sample_and_keeps_leading_dims():
    """Each sample gets its own score: offsets 0.1, 0.01, 0.2 give 20, 40 and 13.98 dB side by side."""
    target = torch.full((2, 3, 3, 8, 8), 0.5)
    offsets = torch.tensor([[0.1, 0.01, 0.2], [0.2, 0.1, 0.01]])
    pred = target + offsets[:, :, None, None, None]
    expected = torch.tensor([[20.0, 40.0, 13.9794], [13.9794, 20.0, 40.0]])
    out = psnr(pred, target)
    assert out.shape == (2, 3)
    assert torch.allclose(out, expected, atol=1e-3)
    assert psnr(pred[0, 0], target[0, 0]).shape == ()  # a single frame gives a scalar


def test_cap_is_the_8bit_quantization_limit():
    """MSE of uniform 8-bit rounding noise, (1/255)^2 / 12, is 58.92 dB: the cap."""
    assert QUANTIZATION_MSE == pytest.approx((1 / 255) ** 2 / 12)
    assert PSNR_CAP_DB == pytest.approx(58.9226, abs=1e-3)
    x = torch.rand(3, 3, 8, 8)
    out = psnr(x, x.clone())
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full((3,), PSNR_CAP_DB))
    # one 8-bit level off everywhere is a real error (48.13 dB), below the cap ...
    assert psnr(x + 1 / 255, x)[0].item() == pytest.approx(20 * math.log10(255), abs=1e-3)
    # ... one level off in a single value is finer than quantization itself: capped
    y = x.clone()
    y[0, 0, 0, 0] += 1 / 255
    assert psnr(y, x)[0].item() == pytest.approx(PSNR_CAP_DB, abs=1e-4)


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        psnr(torch.zeros(2, 3, 8, 8), torch.zeros(3, 8, 8))


def test_psnr_computes_in_float32_for_low_precision_input():
    """0.6 in bf16 is 0.6015625, so a bf16 prediction of 0.5 + 0.1 is off by 0.1015625: 19.865 dB.
    Averaging 12,288 squared errors in bf16 itself would drift far from that."""
    target = torch.full((1, 3, 64, 64), 0.5, dtype=torch.float64)
    pred = (target + 0.1).to(torch.bfloat16)
    assert psnr(pred, target).item() == pytest.approx(19.8654, abs=1e-3)


def test_masked_psnr_scores_each_sample_on_its_own_mask():
    """Masked pixels are off by 0.1 (sample 0) and 0.01 (sample 1); every other pixel is off by
    0.9, which must not count: 20 and 40 dB."""
    target = torch.full((2, 3, 8, 8), 0.05)
    pred = target + 0.9
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[0, 0, :3] = True
    mask[1, 0, :, 5] = True
    pred[0][:, :3] = target[0][:, :3] + 0.1
    pred[1][:, :, 5] = target[1][:, :, 5] + 0.01
    assert torch.allclose(masked_psnr(pred, target, mask), torch.tensor([20.0, 40.0]), atol=1e-3)


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


def test_masked_psnr_is_capped_like_psnr():
    x = torch.rand(1, 3, 4, 4)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert masked_psnr(x, x.clone(), mask).item() == pytest.approx(PSNR_CAP_DB, abs=1e-4)


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
