"""Rollouts you can watch: an animated GIF of named frame sequences side by side.

    wm.animate.gif_output(wm.animate.rollout_gif({"truth": obs, "RSSM": frames}, context=cfg.context))

One shared undithered palette keeps unchanged pixels identical between frames (small GIFs).
`gif_output` labels the GIF image/png: nbconvert has no image/gif, and browsers decode by content.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from ..data import to_uint8_frames

MAX_GIF_BYTES = 2_000_000  # the most the notebook embeds: 2 MB
MIN_PANEL_PX = 192

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
CONTEXT_BAR = (200, 200, 200)  # grey bar: the models see this real frame
IMAGINED_BAR = (255, 190, 120)  # orange bar: the models imagine this frame from the actions alone


def font(size: int):
    """PIL's default font at `size` px (shared with the play panel)."""
    return ImageFont.load_default(size=size)


def _full_sequences(panels: dict, context: int) -> tuple[dict, int]:
    """Every panel as T = context + horizon uint8 frames; a panel of `horizon` frames is led by
    the first panel's context frames (the real frames every model observed)."""
    names = list(panels)
    ref = to_uint8_frames(panels[names[0]])
    T = len(ref)
    if T <= context:
        raise ValueError(f"the first panel ({names[0]!r}) needs context + horizon frames; "
                         f"got {T} for context {context}")
    out = {}
    for name in names:
        f = to_uint8_frames(panels[name])
        if len(f) == T - context:
            f = np.concatenate([ref[:context], f])
        if len(f) != T or f.shape[1:] != ref.shape[1:]:
            raise ValueError(f"panel {name!r}: {len(f)} frames of {f.shape[1:]}; expected {T} (or "
                             f"{T - context} imagined) of {ref.shape[1:]}")
        out[name] = f
    return out, T


def compose_frames(panels: dict, context: int, scale: int = 3, gap: int = 8) -> list[Image.Image]:
    """One RGB image per time step: a status bar ("context 3/8" or "imagined +5 / 20"), then
    every panel side by side, upscaled `scale` times (nearest), with its name above it."""
    seqs, T = _full_sequences(panels, context)
    h, w = next(iter(seqs.values())).shape[1:3]
    ph, pw = h * scale, w * scale
    label_font, bar_font = font(max(12, ph // 12)), font(max(13, ph // 11))
    label_h, bar_h = int(label_font.size * 1.6), int(bar_font.size * 1.7)
    width = len(seqs) * pw + (len(seqs) + 1) * gap
    height = bar_h + label_h + ph + gap
    images = []
    for t in range(T):
        img = Image.new("RGB", (width, height), BACKGROUND)
        draw = ImageDraw.Draw(img)
        imagined = t >= context
        status = (f"imagined step +{t - context + 1} / {T - context}  (open loop, real actions)" if imagined
                  else f"context frame {t + 1} / {context}  (real)")
        draw.rectangle([0, 0, width, bar_h], fill=IMAGINED_BAR if imagined else CONTEXT_BAR)
        draw.text((gap, bar_h // 2), status, fill=INK, font=bar_font, anchor="lm")
        for i, (name, frames) in enumerate(seqs.items()):
            x0 = gap + i * (pw + gap)
            draw.text((x0 + pw // 2, bar_h + label_h // 2), name, fill=INK, font=label_font, anchor="mm")
            panel = Image.fromarray(frames[t]).resize((pw, ph), Image.NEAREST)
            img.paste(panel, (x0, bar_h + label_h))
        images.append(img)
    return images


def _encode(images: list[Image.Image], colors: int, durations: list[int]) -> bytes:
    """GIF bytes on one shared adaptive palette of `colors` colours, no dithering."""
    sample = images[:: max(1, len(images) // 8)]  # the palette is fitted to a spread of frames
    strip = Image.new("RGB", (sample[0].width, sample[0].height * len(sample)))
    for k, im in enumerate(sample):
        strip.paste(im, (0, k * im.height))
    palette = strip.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    frames = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations,
                   loop=0, optimize=True, disposal=1)
    return buf.getvalue()


def rollout_gif(panels: dict, context: int, scale: int = 3, frame_ms: int = 250, end_pause_ms: int = 1500,
                max_bytes: int = MAX_GIF_BYTES, colors: int = 128) -> bytes:
    """Animated GIF bytes of panels {name: frames [T, 3, H, W]} side by side, one GIF frame per step
    (panels after the first may hold only the imagined frames: the first's context leads them).
    Re-encoded with fewer colours until it fits `max_bytes`, else a ValueError."""
    first = next(iter(panels.values()))
    if min(first.shape[-2:]) * scale < MIN_PANEL_PX:
        raise ValueError(f"scale {scale} makes {tuple(first.shape[-2:])} panels smaller than {MIN_PANEL_PX} px")
    images = compose_frames(panels, context, scale)
    durations = [frame_ms] * (len(images) - 1) + [end_pause_ms]
    tried = []
    for n in sorted({c for c in (colors, 64, 32, 16) if c <= colors}, reverse=True):
        data = _encode(images, n, durations)
        tried.append(f"{n} colours: {len(data) / 1e6:.2f} MB")
        if len(data) <= max_bytes:
            return data
    raise ValueError(f"GIF larger than {max_bytes / 1e6:.1f} MB at every palette ({'; '.join(tried)}): "
                     f"show fewer steps or panels")


def gif_info(data: bytes) -> dict:
    """{"frames", "width", "height", "bytes", "durations_ms"} of GIF bytes (what the tests check)."""
    im = Image.open(io.BytesIO(data))
    return {"frames": im.n_frames, "width": im.width, "height": im.height, "bytes": len(data),
            "durations_ms": [frame.info.get("duration", 0) for frame in ImageSequence.Iterator(im)]}


class GifOutput:
    """A notebook output that plays GIF bytes in Jupyter and in static renders (see module doc)."""

    def __init__(self, data: bytes):
        self.data, self.info = data, gif_info(data)

    def __repr__(self) -> str:  # the text/plain fallback: what the output is, no object address
        i = self.info
        return f"<animated GIF: {i['frames']} frames, {i['width']}x{i['height']} px, {i['bytes'] / 1e6:.2f} MB>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        b64 = base64.b64encode(self.data).decode("ascii")
        size = {"width": self.info["width"], "height": self.info["height"]}
        return {"image/png": b64, "text/plain": repr(self)}, {"image/png": size}


def gif_output(data: bytes) -> GifOutput:
    """Wrap GIF bytes for display: make it the last expression of a cell (or pass it to display())."""
    return GifOutput(data)
