"""The embedded default benchmark "needle": seeded synthetic videos with needle-in-a-haystack questions.

Each question gets its own mp4: a smoothly drifting haystack (a slowly turning colour wave plus soft
blobs on slow orbits, so adjacent frames are as redundant as in real video) with short needle events
rendered over it (a saturated shape, a digit or a word, large enough to survive compression). Three
4-option multiple-choice kinds, in the spirit of VideoNIAH / VNBench:

- retrieval: one needle at a controlled depth; which of four labels appeared?
- ordering: three needles in the three thirds of the video; which of four orderings is right?
- counting: one needle shown 1-4 times; how many times?

Everything derives from the seed, so a dataset is reproducible: same seed, same annotations and same
decoded pixels. `ensure_needle_dataset` builds a dataset once and reuses it while the config matches.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from functools import lru_cache
from itertools import permutations
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

ANNOTATIONS = "annotations.parquet"
MANIFEST = "manifest.json"
GENERATOR_VERSION = 2  # bump whenever the output for a given config changes, so cached datasets rebuild
KINDS = ("retrieval", "ordering", "counting")
LETTERS = "ABCD"

COLOURS = {
    "red": (235, 20, 20),
    "green": (0, 200, 40),
    "blue": (25, 60, 240),
    "yellow": (255, 225, 0),
    "magenta": (230, 0, 210),
    "cyan": (0, 215, 235),
    "orange": (255, 130, 0),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon")
WORDS = ("APPLE", "TIGER", "CLOUD", "PIANO", "HOUSE", "LEMON", "ROBOT", "ZEBRA", "TRAIN", "CHAIR", "GLOBE", "SNAKE")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "shape": tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES),
    "digit": tuple(f"digit {d}" for d in range(10)),
    "word": tuple(f"word {w}" for w in WORDS),
}

SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("video", pa.string()),  # relative to the dataset root
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),  # 4 option texts, no letter prefixes
        ("answer", pa.string()),  # gold letter A-D
        ("kind", pa.string()),
        ("num_frames", pa.int64()),
        ("fps", pa.float64()),
        ("duration", pa.float64()),
        ("depth", pa.float64()),  # needle start / (num_frames - needle_frames); mean over events unless retrieval
        ("length_bucket", pa.string()),
        ("needle_frames", pa.list_(pa.int64())),  # every frame where a needle is visible
        ("needle_times", pa.list_(pa.float64())),  # start time (s) of each event, in time order
        ("needle_events", pa.list_(pa.list_(pa.int64()))),  # [start, end) frame range of each event
        ("evidence_spans", pa.list_(pa.list_(pa.float64()))),  # [start, end) seconds of each event
        ("depth_bucket", pa.string()),  # retrieval depth as text; "spread" for multi-needle kinds
        ("needle_labels", pa.list_(pa.string())),  # label of each event
    ]
)


@dataclass(frozen=True)
class NeedleConfig:
    seed: int = 0  # master seed; every question derives its own seed from (seed, question index)
    lengths: tuple[int, ...] = (32, 128, 512)  # video lengths in frames, one length bucket each
    depths: tuple[float, ...] = (0.1, 0.5, 0.9)  # retrieval needle depths (fraction of the video), cycled
    per_cell: int = 4  # questions per (kind, length); 4 balances gold letters in every cell -> 36 questions
    kinds: tuple[str, ...] = KINDS  # question kinds to generate
    fps: float = 1.0  # frames per second of the written videos (long videos at 1 fps, as ViLAMP decodes)
    size: tuple[int, int] = (128, 128)  # (width, height) of the frames; even numbers for yuv420p
    needle_frames: int = 2  # frames each needle event lasts
    gop: int = 32  # fixed keyframe interval, so seeking is cheap and keyframes say nothing about needles

    def __post_init__(self) -> None:
        problems = []
        if not self.lengths or min(self.lengths) < 4 * (self.needle_frames + 2):
            problems.append(f"every length must be >= {4 * (self.needle_frames + 2)} frames (4 counting events)")
        if not self.depths or not all(0.0 <= d <= 1.0 for d in self.depths):
            problems.append("depths must be non-empty and within [0, 1]")
        if self.per_cell < 1:
            problems.append("per_cell must be >= 1")
        if not self.kinds or not set(self.kinds) <= set(KINDS):
            problems.append(f"kinds must be a non-empty subset of {KINDS}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            problems.append("fps must be positive")
        if len(self.size) != 2 or any(s < 32 or s % 2 for s in self.size):
            problems.append("size must be (width, height), both even and >= 32")
        if self.seed < 0 or self.needle_frames < 1 or self.gop < 1:
            problems.append("seed must be >= 0, needle_frames and gop >= 1")
        if problems:
            raise ValueError("invalid NeedleConfig: " + "; ".join(problems))


def ensure_needle_dataset(root: Path, config: NeedleConfig = NeedleConfig()) -> Path:
    """Generate the dataset into `root` unless a complete one with the same config is there; return its annotations.

    Generation happens in a temporary sibling directory renamed into place at the end, so an interrupted
    run never leaves a directory that looks complete.
    """
    root = Path(root)
    if _is_complete(root, config):
        return root / ANNOTATIONS
    if root.exists() and any(root.iterdir()) and not (root / MANIFEST).exists():
        raise FileExistsError(f"{root} exists and is not a needle dataset; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; the dataset is meant to be shared
    try:
        _generate(staging, config)
        _write_manifest(staging, config)
        if root.exists():  # stale: move aside first so `root` is only ever absent or complete
            stale = root.with_name(f"{staging.name}.old")
            root.rename(stale)
            shutil.rmtree(stale)
        staging.rename(root)
    except OSError:
        if not _is_complete(root, config):  # lost a race with another process generating the same config
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / ANNOTATIONS


def _config_json(config: NeedleConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))  # tuples become lists, as they come back from the manifest


def _is_complete(root: Path, config: NeedleConfig) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (
        manifest.get("complete") is True
        and manifest.get("generator_version") == GENERATOR_VERSION
        and manifest.get("config") == _config_json(config)
        and (root / ANNOTATIONS).is_file()
    )


def _write_manifest(root: Path, config: NeedleConfig) -> None:
    manifest = {"generator_version": GENERATOR_VERSION, "config": _config_json(config), "complete": True}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


# ---------------------------------------------------------------- questions


@dataclass(frozen=True)
class _Spec:
    index: int  # position in the dataset; seeds the question
    kind: str
    length: int
    cell_index: int
    gold: int  # 0-based gold option
    depth: float  # retrieval depth; unused by the other kinds


def _plan(config: NeedleConfig) -> list[_Spec]:
    """Every question's kind, length and gold letter, drawn from the master rng so letters are balanced."""
    rng = np.random.default_rng(config.seed)
    specs: list[_Spec] = []
    retrieval_count = 0
    for kind in config.kinds:
        for length in config.lengths:
            golds = rng.permutation(np.resize(np.arange(len(LETTERS)), config.per_cell))
            for i, gold in enumerate(golds):
                depth = 0.0
                if kind == "retrieval":  # cycled over the whole kind, not per cell, so depths stay balanced
                    depth = config.depths[retrieval_count % len(config.depths)]
                    retrieval_count += 1
                specs.append(_Spec(len(specs), kind, length, i, int(gold), depth))
    return specs


def _random_category(rng: np.random.Generator) -> tuple[str, ...]:
    return list(CATEGORIES.values())[rng.integers(len(CATEGORIES))]  # uniform over categories, not labels


def _random_label(rng: np.random.Generator) -> str:
    pool = _random_category(rng)
    return pool[rng.integers(len(pool))]


def _with_gold(correct: str, distractors: list[str], gold: int) -> list[str]:
    options = list(distractors)
    options.insert(gold, correct)
    return options


def _spread_starts(length: int, needle_frames: int, k: int, rng: np.random.Generator) -> list[int]:
    """One event start per k-th of the video, jittered around the segment centre, never touching a neighbour."""
    edges = [round(j * length / k) for j in range(k + 1)]
    starts = []
    for a, b in zip(edges, edges[1:]):
        slack = b - a - needle_frames
        start = round(a + slack / 2 + rng.uniform(-slack / 4, slack / 4))
        starts.append(min(max(start, a + 1), b - needle_frames))  # >= 1 haystack frame before each event
    return starts


def _question(spec: _Spec, config: NeedleConfig, rng: np.random.Generator) -> tuple[dict, list[tuple[str, int]]]:
    """The annotation row and the needle events (label, start frame) of one question."""
    n, nf = spec.length, config.needle_frames
    span = n - nf  # last possible start frame
    if spec.kind == "retrieval":
        pool = _random_category(rng)
        picked = [pool[i] for i in rng.choice(len(pool), size=4, replace=False)]  # same category: no format hint
        events = [(picked[0], round(spec.depth * span))]
        question = "Which of these appeared in the video?"
        options = _with_gold(picked[0], picked[1:], spec.gold)
        depth = spec.depth
    elif spec.kind == "ordering":
        labels: list[str] = []
        while len(labels) < 3:
            label = _random_label(rng)
            if label not in labels:
                labels.append(label)
        starts = _spread_starts(n, nf, 3, rng)
        events = list(zip(labels, starts))
        wrong = list(permutations(labels))[1:]  # the identity permutation is the true order
        distractors = [", ".join(wrong[i]) for i in rng.choice(len(wrong), size=3, replace=False)]
        question = "In which order did these appear in the video?"
        options = _with_gold(", ".join(labels), distractors, spec.gold)
        depth = float(np.mean([s / span for s in starts]))
    else:
        label = _random_label(rng)
        starts = _spread_starts(n, nf, spec.gold + 1, rng)
        events = [(label, s) for s in starts]
        question = f"How many times did the {label} appear in the video?"
        options = ["1", "2", "3", "4"]
        depth = float(np.mean([s / span for s in starts]))
    question_id = f"needle_{spec.kind}_{n}_{spec.cell_index}"
    row = {
        "question_id": question_id,
        "video": f"videos/{question_id}.mp4",
        "question": question,
        "options": options,
        "answer": LETTERS[spec.gold],
        "kind": spec.kind,
        "num_frames": n,
        "fps": float(config.fps),
        "duration": n / config.fps,
        "depth": float(depth),
        "length_bucket": str(n),
        "needle_frames": sorted(t for _, s in events for t in range(s, s + nf)),
        "needle_times": [s / config.fps for _, s in events],
        "needle_events": [[s, s + nf] for _, s in events],
        "evidence_spans": [[s / config.fps, (s + nf) / config.fps] for _, s in events],
        "depth_bucket": f"{depth:.1f}" if spec.kind == "retrieval" else "spread",
        "needle_labels": [label for label, _ in events],
    }
    return row, events


# ---------------------------------------------------------------- rendering


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


def _write_video(
    path: Path,
    num_frames: int,
    events: list[tuple[str, int]],
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
    rate = Fraction(config.fps).limit_denominator(1001)
    codec = _video_codec()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=_codec_options(codec, config.gop))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size = config.gop
        for t in range(num_frames):
            img = haystack.frame(t)
            if (overlay := overlay_at.get(t)) is not None:
                img = overlay.over(img)
            frame = av.VideoFrame.from_ndarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, 1 / rate
            container.mux(stream.encode(frame))
            progress.update()
        container.mux(stream.encode())


def _generate(out: Path, config: NeedleConfig) -> None:
    (out / "videos").mkdir()
    specs = _plan(config)
    rows = []
    with tqdm(total=sum(s.length for s in specs), unit="frame", desc="needle dataset", file=sys.stderr) as progress:
        for spec in specs:
            rng = np.random.default_rng([config.seed, spec.index])
            row, events = _question(spec, config, rng)
            _write_video(out / row["video"], spec.length, events, config, rng, progress)
            rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out / ANNOTATIONS)


def prepare(root: Path, **overrides: object) -> Path:
    """The task YAML's generator hook: `dataset.generator_args` override NeedleConfig fields."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return ensure_needle_dataset(root, NeedleConfig(**fields))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.data.needle", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset directory")
    parser.add_argument("--lengths", help="comma-separated video lengths in frames, e.g. 32,128")
    parser.add_argument("--seed", type=int, default=NeedleConfig.seed)
    parser.add_argument("--per-cell", type=int, default=NeedleConfig.per_cell, help="questions per (kind, length)")
    args = parser.parse_args(argv)
    config = NeedleConfig(seed=args.seed, per_cell=args.per_cell)
    if args.lengths:
        config = replace(config, lengths=tuple(int(x) for x in args.lengths.split(",")))
    print(ensure_needle_dataset(args.out, config))


if __name__ == "__main__":
    main()
