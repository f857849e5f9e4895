"""Figures for run and comparison reports (matplotlib, Agg: no display needed).

Every function returns a `Figure`; `save` writes it as PNG and returns the labels it carries, which
callers keep in a `plots.json` sidecar so a reader (or a test) can tell what each PNG shows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless workers and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from harness.core.records import SampleResult  # noqa: E402
from harness.core.status import ANSWERED  # noqa: E402
from harness.results.summary import STAGES  # noqa: E402

MARKERS = "osD^vPX*<>"


@dataclass(frozen=True)
class Point:
    """One run in a cross-run plot: its label and the per-run figures."""

    label: str
    x: float
    y: float
    yerr: float = 0.0


def labels(fig: Figure) -> dict[str, Any]:
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    return {
        "title": fig.get_suptitle() or (axes[0].get_title() if axes else ""),
        "xlabel": axes[0].get_xlabel() if axes else "",
        "ylabel": axes[0].get_ylabel() if axes else "",
        "panels": [ax.get_title() for ax in axes],
    }


def save(fig: Figure, path: Path) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    info = {"file": path.name, **labels(fig)}
    plt.close(fig)
    return info


def scatter(points: Sequence[Point], xlabel: str, ylabel: str, title: str,
            ylim: tuple[float, float] | None = None) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, p in enumerate(points):  # distinct marker and colour per run: runs at equal cost overlap
        ax.errorbar(p.x, p.y, yerr=p.yerr or None, fmt=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", capsize=3,
                    markersize=8, alpha=0.8, label=p.label)
    xs = [p.x for p in points]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:  # budgets often differ by orders of magnitude
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    if ylim:
        ax.set_ylim(*ylim)
    return fig


def stage_breakdown(runs: Sequence[tuple[str, Mapping[str, float]]]) -> Figure:
    """Stacked bars of mean seconds per stage, one bar per run (`runs`: label → `stage_costs`)."""
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(runs) + 1.8))
    left = np.zeros(len(runs))
    names = [label for label, _ in runs]
    for i, stage in enumerate(STAGES):
        widths = np.array([stages.get(stage, 0.0) for _, stages in runs])
        ax.barh(names, widths, left=left, color=f"C{i}", label=stage)
        left += widths
    ax.set_xlabel("mean seconds per sample")
    ax.set_ylabel("run")
    ax.set_title("latency by stage")
    ax.legend(fontsize=7, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.05 * len(runs)))
    ax.invert_yaxis()
    return fig


def bucket_order(value: str) -> tuple[int, float, str]:
    """Numeric buckets in numeric order; text ones (e.g. "spread") after them."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


@dataclass(frozen=True)
class Grid:
    rows: tuple[str, ...]  # row bucket values (video length)
    cols: tuple[str, ...]  # column bucket values (needle depth)
    values: np.ndarray  # [rows, cols] mean, NaN where empty
    counts: np.ndarray  # [rows, cols] samples per cell


def grid(results: Sequence[SampleResult], row_key: str, col_key: str,
         value: Callable[[SampleResult], float | None]) -> Grid:
    """Mean of `value` per (row bucket, column bucket); samples where `value` is None are left out."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        if row_key in r.breakdown and col_key in r.breakdown:
            v = value(r)
            if v is not None:
                cells[r.breakdown[row_key], r.breakdown[col_key]].append(v)
    rows = tuple(sorted({k[0] for k in cells}, key=bucket_order))
    cols = tuple(sorted({k[1] for k in cells}, key=bucket_order))
    values = np.full((len(rows), len(cols)), np.nan)
    counts = np.zeros((len(rows), len(cols)), dtype=int)
    for (r, c), vs in cells.items():
        values[rows.index(r), cols.index(c)] = float(np.mean(vs))
        counts[rows.index(r), cols.index(c)] = len(vs)
    return Grid(rows, cols, values, counts)


def heatmaps(grids: Sequence[tuple[str, Grid]], title: str, xlabel: str, ylabel: str, unit: str = "%") -> Figure:
    """One heat-map per run (up to 4 per row) on a shared 0–100 scale; each cell shows its value and n."""
    ncols = min(max(len(grids), 1), 4)
    nrows = math.ceil(max(len(grids), 1) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.2, 3.2 * nrows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(grids):]:
        ax.remove()  # unused cells of the last row
    image = None
    for ax, (label, g) in zip(axes.flat, grids, strict=False):
        image = ax.imshow(np.ma.masked_invalid(g.values), vmin=0, vmax=100, cmap="viridis", aspect="auto",
                          origin="lower")
        ax.set_xticks(range(len(g.cols)), g.cols)
        ax.set_yticks(range(len(g.rows)), g.rows)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(label, fontsize=9)
        for i in range(len(g.rows)):
            for j in range(len(g.cols)):
                if g.counts[i, j]:
                    v = g.values[i, j]
                    ax.text(j, i, f"{v:.0f}{unit}\nn={g.counts[i, j]}", ha="center", va="center", fontsize=7,
                            color="white" if v < 60 else "black")
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat[:len(grids)]), shrink=0.85, label=f"{title} ({unit})")
    fig.suptitle(title)
    return fig


def needle_heatmaps(runs: Sequence[tuple[str, Sequence[SampleResult]]]) -> dict[str, Figure]:
    """Accuracy and needle retention over video length × needle depth, for runs with those breakdowns."""
    def acc(r: SampleResult) -> float | None:
        return 100.0 * r.correct if r.gold is not None else None

    def kept(r: SampleResult) -> float | None:
        return 100.0 * r.needle_retained if r.needle_retained is not None and r.status in ANSWERED else None

    figures = {}
    for name, value, title in (("needle_accuracy", acc, "accuracy"), ("needle_retention", kept, "needle retention")):
        grids = [(label, grid(results, "length_bucket", "depth_bucket", value)) for label, results in runs]
        grids = [(label, g) for label, g in grids if g.rows]
        if grids:
            fig = heatmaps(grids, title, "needle depth (fraction of video)", "video length (frames)")
            fig.supxlabel("depth 'spread': questions about several needles across the video", fontsize=8)
            figures[name] = fig
    return figures


def frame_strip(pixels: np.ndarray, highlight: Sequence[bool] = (), height: int = 48, max_frames: int = 32) -> np.ndarray:
    """Kept frames side by side as one RGB image, evenly thinned to `max_frames`; highlighted ones framed red."""
    from PIL import Image

    t = len(pixels)
    if t == 0:
        return np.zeros((height, 1, 3), np.uint8)
    take = np.unique(np.linspace(0, t - 1, min(t, max_frames)).round().astype(int))
    width = max(1, math.ceil(pixels.shape[2] * height / pixels.shape[1]))
    tiles = []
    for i in take:
        tile = np.asarray(Image.fromarray(pixels[i]).resize((width, height), Image.BILINEAR)).copy()
        if i < len(highlight) and highlight[i]:
            tile[:2], tile[-2:], tile[:, :2], tile[:, -2:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
        tiles.append(tile)
        tiles.append(np.full((height, 2, 3), 255, np.uint8))  # white gap between frames
    return np.concatenate(tiles[:-1], axis=1)


def run_figures(label: str, results: Sequence[SampleResult], stages: Mapping[str, float]) -> dict[str, Figure]:
    """The figures of one run: latency by stage (`stage_costs`), and the needle heat-maps when the task has them."""
    return {"latency_by_stage": stage_breakdown([(label, stages)]), **needle_heatmaps([(label, results)])}
