"""The rollout GIF: frame count, panel size, labels' room, the 2 MB cap, and its notebook output."""

from __future__ import annotations

import base64
import io

import pytest
import torch
from PIL import Image

from wmhelpers.notebook_tools import animate


def _rollout(T: int, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """T frames of a square crossing a plain background (what an Atari frame looks like to a GIF)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.empty(T, 3, 64, 64)
    f[:] = torch.tensor([0.35, 0.45, 0.2])[:, None, None]
    for t in range(T):
        f[t, :, 20:34, 2 * t : 2 * t + 8] = 0.9
    return (f + noise * torch.randn(f.shape, generator=g)).clamp(0, 1)


def test_gif_has_one_frame_per_step_and_big_panels():
    C, H = 4, 20
    truth = _rollout(C + H)
    gif = animate.rollout_gif({"truth": truth, "RSSM": _rollout(C + H, 0.02, 1)[C:],
                               "Transformer": _rollout(C + H, 0.02, 2)[C:]}, context=C)
    info = animate.gif_info(gif)
    assert info["frames"] == C + H
    assert info["bytes"] == len(gif) <= animate.MAX_GIF_BYTES
    assert info["width"] >= 3 * 192 and info["height"] >= 192
    assert info["durations_ms"][-1] > info["durations_ms"][0]  # a pause before it loops
    # the panel is the frame at 3x, nearest: a row near its bottom (plain background) holds
    # exactly 3 * 64 = 192 background-coloured pixels, and the panel leaves room for the labels
    frame = animate.compose_frames({"truth": truth}, context=C)[0]
    background = tuple(int(round(v * 255)) for v in (0.35, 0.45, 0.2))
    row = [frame.getpixel((x, frame.height - 12)) for x in range(frame.width)]
    assert row.count(background) == 192
    assert frame.height - 192 > 30  # the status bar and the panel name sit above it
    assert Image.open(io.BytesIO(gif)).size == (info["width"], info["height"])


def test_short_panels_are_led_by_the_true_context_frames():
    C, H = 3, 5
    truth = _rollout(C + H)
    model = torch.zeros(H, 3, 64, 64)
    seqs, T = animate._full_sequences({"truth": truth, "model": model}, C)
    assert T == C + H
    assert (seqs["model"][:C] == seqs["truth"][:C]).all() and (seqs["model"][C:] == 0).all()
    with pytest.raises(ValueError):
        animate._full_sequences({"truth": truth, "model": torch.zeros(H + 1, 3, 64, 64)}, C)


def test_status_bar_tells_context_from_imagined():
    frames = animate.compose_frames({"truth": _rollout(6)}, context=2)
    bar = [f.getpixel((2, 2)) for f in frames]
    assert bar[:2] == [animate.CONTEXT_BAR] * 2 and bar[2:] == [animate.IMAGINED_BAR] * 4


def test_size_cap_is_enforced():
    noisy = {"a": torch.rand(30, 3, 64, 64), "b": torch.rand(30, 3, 64, 64)}
    small = animate.rollout_gif(noisy, context=5, max_bytes=10**9)
    with pytest.raises(ValueError, match="larger than"):
        animate.rollout_gif(noisy, context=5, max_bytes=len(small) // 20)
    with pytest.raises(ValueError, match="192"):
        animate.rollout_gif(noisy, context=5, scale=2)


def test_notebook_output_carries_the_gif_bytes(tmp_path):
    gif = animate.rollout_gif({"truth": _rollout(6)}, context=2)
    bundle, meta = animate.gif_output(gif)._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"]) == gif and gif[:6] == b"GIF89a"
    assert "6 frames" in bundle["text/plain"] and meta["image/png"]["width"] == animate.gif_info(gif)["width"]
