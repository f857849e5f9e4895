"""The videos of a needle dataset: a drifting haystack, needle overlays drawn over it, encoded frame by frame."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from harness.data.needle.config import NeedleConfig
from harness.data.needle.questions import COLOURS, Events


class _Haystack:
    """A smoothly drifting scene: a slowly turning colour wave under soft blobs on slow orbits."""

    def __init__(self, rng: np.random.Generator, width: int, height: int) -> None:
        self.x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
        self.y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
        # Muted colours (grey plus a small tint) keep the saturated needles the most salient thing on screen.
        self.colours = _muted(rng, 2)
        self.colour_period = rng.uniform(300, 3000, (2, 3))
        self.colour_phase = rng.uniform(0, 2 * np.pi, (2, 3))
        self.angle = rng.uniform(0, 2 * np.pi)
        self.spin = rng.uniform(0.002, 0.01) * rng.choice([-1, 1])  # rad/frame
        self.wave_freq = rng.uniform(1.0, 2.5)
        self.wave_phase = rng.uniform(0, 2 * np.pi)
        self.wave_speed = rng.uniform(0.01, 0.04)  # rad/frame
        blobs = 3
        self.blob_centre = rng.uniform(-0.4, 0.4, (blobs, 2))
        self.blob_reach = rng.uniform(0.2, 0.6, (blobs, 2))
        self.blob_period = rng.uniform(150, 1500, (blobs, 2))  # frames: at most ~1.5 px/frame at 128 px
        self.blob_phase = rng.uniform(0, 2 * np.pi, (blobs, 2))
        self.blob_sigma = rng.uniform(0.15, 0.4, blobs)
        self.blob_alpha = rng.uniform(0.4, 0.7, blobs)
        self.blob_colour = _muted(rng, blobs).astype(np.float32)

    def frame(self, t: int) -> np.ndarray:
        """Float32 RGB [H, W, 3] in 0..255. Every term is separable in x and y, so it costs outer products only."""
        drift = 30 * np.sin(2 * np.pi * t / self.colour_period + self.colour_phase)
        colours = (self.colours + drift).astype(np.float32)
        angle = self.angle + self.spin * t
        u = float(self.wave_freq * np.pi * np.cos(angle)) * self.x + float(self.wave_phase + self.wave_speed * t)
        v = float(self.wave_freq * np.pi * np.sin(angle)) * self.y
        wave = 0.5 + 0.5 * (np.sin(u) * np.cos(v) + np.cos(u) * np.sin(v))  # sin(u + v)
        img = colours[0] + (colours[1] - colours[0]) * wave[..., None]
        centres = self.blob_centre + self.blob_reach * np.sin(2 * np.pi * t / self.blob_period + self.blob_phase)
        for (cx, cy), sigma, alpha, colour in zip(centres, self.blob_sigma, self.blob_alpha, self.blob_colour):
            scale = float(-1 / (2 * sigma**2))
            weight = np.exp(scale * (self.x - float(cx)) ** 2) * np.exp(scale * (self.y - float(cy)) ** 2)
            weight *= float(alpha)
            img += weight[..., None] * (colour - img)
        return img


def _muted(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(rng.uniform(70, 180, (n, 1)) + rng.normal(0, 25, (n, 3)), 20, 235)


@dataclass(frozen=True)
class _Overlay:
    alpha: np.ndarray  # [H, W, 1] coverage in 0..1
    premultiplied: np.ndarray  # [H, W, 3] colour * alpha

    def over(self, img: np.ndarray) -> np.ndarray:
        return img * (1 - self.alpha) + self.premultiplied


_SUPERSAMPLE = 4  # draw needles at 4x and downsample: anti-aliased edges stay crisp after compression


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _overlay(label: str, width: int, height: int, rng: np.random.Generator) -> _Overlay:
    """Render one needle at a random position and scale as an RGBA layer over the frame."""
    ss = _SUPERSAMPLE
    w, h = width * ss, height * ss
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    outline = (0, 0, 0, 255)
    head, _, rest = label.partition(" ")
    if head in ("digit", "word"):
        # Black text on a white plate with a dark border: legible over any haystack colour.
        reference = _font(100).getbbox(rest)
        ref_w, ref_h = reference[2] - reference[0], reference[3] - reference[1]
        if head == "digit":
            scale = rng.uniform(0.45, 0.6) * h / ref_h
        else:
            scale = min(rng.uniform(0.7, 0.8) * w / ref_w, 0.45 * h / ref_h)
        font = _font(max(8, round(100 * scale)))
        left, top, right, bottom = font.getbbox(rest)
        pad = round(0.25 * (bottom - top))
        plate_w, plate_h = right - left + 2 * pad, bottom - top + 2 * pad
        x0 = round(rng.uniform(ss, w - plate_w - ss))
        y0 = round(rng.uniform(ss, h - plate_h - ss))
        draw.rounded_rectangle(
            (x0, y0, x0 + plate_w, y0 + plate_h), radius=pad, fill=(255, 255, 255, 255), outline=outline, width=2 * ss
        )
        draw.text((x0 + pad - left, y0 + pad - top), rest, font=font, fill=(0, 0, 0, 255))
    else:
        fill = COLOURS[head] + (255,)
        r = rng.uniform(0.26, 0.36) * min(w, h)
        cx = rng.uniform(r + 2 * ss, w - r - 2 * ss)
        cy = rng.uniform(r + 2 * ss, h - r - 2 * ss)
        if rest == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=outline, width=2 * ss)
        else:
            draw.polygon(_shape_points(rest, cx, cy, r), fill=fill, outline=outline, width=2 * ss)
    rgba = np.asarray(layer.resize((width, height), Image.Resampling.BOX), dtype=np.float32)
    alpha = rgba[..., 3:] / 255
    return _Overlay(alpha=alpha, premultiplied=rgba[..., :3] * alpha)


def _shape_points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    def ring(n: int, radius: float, first_deg: float) -> list[tuple[float, float]]:
        angles = np.deg2rad(first_deg + 360 / n * np.arange(n))
        return [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]

    if shape == "square":
        return ring(4, r, 45)
    if shape == "diamond":  # taller than wide, so it never reads as a turned square
        return [(cx, cy - r), (cx + 0.65 * r, cy), (cx, cy + r), (cx - 0.65 * r, cy)]
    if shape == "triangle":
        return ring(3, r, -90)
    if shape == "hexagon":
        return ring(6, r, 0)
    if shape == "star":
        outer, inner = ring(5, r, -90), ring(5, 0.42 * r, -54)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a = 0.34 * r
        corners = [(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a)]
        corners += [(-dx, -dy) for dx, dy in corners]  # the other half, by point symmetry
        return [(cx + dx, cy + dy) for dx, dy in corners]
    raise ValueError(f"unknown shape {shape!r}")


def _video_codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _codec_options(codec: str, gop: int) -> dict[str, str]:
    if codec == "libx264":
        # No scene-cut keyframes: I-frame positions must not give needles away to keyframe-based selectors.
        gop_params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        return {"preset": "ultrafast", "crf": "18", "threads": "1", "x264-params": gop_params}
    return {"sc_threshold": "1000000000", "flags": "+qscale", "global_quality": str(3 * 118)}  # fixed q=3


def write_video(
    path: Path,
    num_frames: int,
    events: Events,
    config: NeedleConfig,
    rng: np.random.Generator,
    progress: tqdm,
) -> None:
    """Render and encode frame by frame: memory stays flat whatever the length."""
    width, height = config.size
    haystack = _Haystack(rng, width, height)
    overlay_at: dict[int, _Overlay] = {}
    for label, start in events:
        overlay = _overlay(label, width, height, rng)
        overlay_at.update((t, overlay) for t in range(start, start + config.needle_frames))

    def frames():
        for t in range(num_frames):
            img = haystack.frame(t)
            if (overlay := overlay_at.get(t)) is not None:
                img = overlay.over(img)
            yield np.clip(np.rint(img), 0, 255).astype(np.uint8)
            progress.update()

    encode_video(path, frames(), config)


def encode_video(path: Path, frames: Iterable[np.ndarray], config: NeedleConfig) -> None:
    """uint8 RGB frames [H, W, 3] encoded as the task's videos are (codec, quality, fixed GOP, fps, yuv420p)."""
    width, height = config.size
    rate = Fraction(config.fps).limit_denominator(1001)
    codec = _video_codec()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=_codec_options(codec, config.gop))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = config.gop
        for t, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
