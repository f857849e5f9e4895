"""Weights & Biases logging from the driver: config, live progress, summary metrics, tables and plots.

Offline unless the user sets WANDB_MODE=online (then `wandb sync` is not needed). Only the resolved
run config, the protocol versions and package versions are logged — never environment variables, so
no API key can reach W&B config or results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.records import SampleResult
from harness.core.status import ANSWERED
from harness.results.summary import RunSummary, provenance, ttft_s

STRIP_SAMPLES = 4  # samples whose kept frames are shown as an image strip in the samples table
STRIP_HEIGHT = 48  # pixels per thumbnail
_JSON_COLUMNS = ("frame_indices", "keyframes")  # tuples shown as JSON text in the table


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def wandb_config(config: dict[str, Any], group: str, origin: dict[str, Any] | None = None) -> dict[str, Any]:
    """What W&B records as the run config: the resolved run config plus protocol and package versions."""
    return {**config, "group": group, **(origin or provenance(config))}


def sample_columns(results: Sequence[SampleResult]) -> list[str]:
    """Every SampleResult field (new fields appear without code changes), breakdowns and timings spread out."""
    names = [f.name for f in dataclasses.fields(SampleResult) if f.name not in ("breakdown", "timings_s")]
    breakdown = sorted({k for r in results for k in r.breakdown})
    stages = sorted({k for r in results for k in r.timings_s})
    return names + [f"breakdown/{k}" for k in breakdown] + [f"time/{k}" for k in stages] + ["ttft_s", "frames"]


def sample_row(result: SampleResult, columns: Sequence[str], strip: Any) -> list[Any]:
    row = []
    for column in columns:
        if column.startswith("breakdown/"):
            row.append(result.breakdown.get(column.split("/", 1)[1]))
        elif column.startswith("time/"):
            row.append(result.timings_s.get(column.split("/", 1)[1]))
        elif column == "ttft_s":
            row.append(ttft_s(result))
        elif column == "frames":
            row.append(strip)
        elif column in _JSON_COLUMNS:
            row.append(json.dumps(list(getattr(result, column))))
        else:
            row.append(getattr(result, column))
    return row


def kept_frames_strip(result: SampleResult, video: str) -> Any | None:
    """The frames this sample's method kept, re-decoded small; keyframes (kept whole) framed red."""
    from harness.results.plots import frame_strip
    from harness.video.reader import VideoError, probe, read_frames

    if not result.frame_indices:
        return None
    try:
        meta = probe(video)
        width = max(2, round(meta.width * STRIP_HEIGHT / max(meta.height, 1)) // 2 * 2)
        frames = read_frames(video, result.frame_indices, size=(width, STRIP_HEIGHT))
    except (VideoError, OSError):
        return None  # the table still has the row; only its picture is missing
    keyframes = set(result.keyframes)
    return frame_strip(frames.pixels, [i in keyframes for i in frames.indices], height=STRIP_HEIGHT)


def open_run(directory: Path, name: str, group: str, job_type: str, config: dict[str, Any]) -> Any:
    """A W&B run (offline unless WANDB_MODE says otherwise) beside the others this process has open: a suite's
    tasks and a sweep's summary each get their own (`reinit="create_new"`; the default returns the open one)."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(project=os.environ.get("WANDB_PROJECT", "vilamp-harness"),
                      mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
                      dir=str(directory), name=name, group=group, job_type=job_type, config=config,
                      settings=wandb.Settings(console="off", x_disable_stats=True, reinit="create_new"))


class WandbSink:
    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any], group: str | None = None,
                 origin: dict[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.group = group or config.get("task") or "eval"
        self.run = open_run(run_dir, run_id, self.group, "eval", wandb_config(config, self.group, origin))
        self.start = time.perf_counter()
        self.done = 0
        self.correct = 0
        self.failed = 0
        self.frames = 0

    @property
    def run_path(self) -> str:
        return str(Path(self.run.dir).parent)

    def log_sample(self, result: SampleResult) -> None:
        """Live series: progress, running accuracy, throughput since the run started, and this sample's cost."""
        self.done += 1
        self.correct += result.correct
        self.failed += result.status not in ANSWERED
        self.frames += result.n_frames_decoded
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.run.log({
            "samples_done": self.done, "running_accuracy": 100.0 * self.correct / self.done,
            "failures": self.failed, "samples_per_s": self.done / elapsed, "frames_per_s": self.frames / elapsed,
            "latency_s": result.timings_s.get("total", 0.0), "ttft_s": ttft_s(result),
            "visual_tokens": result.visual_tokens, "peak_memory_mb": result.peak_rss_mb,
        })

    def finish(self, summary: RunSummary, results: Sequence[SampleResult],
               videos: Mapping[str, str] | None = None) -> None:
        """Summary metrics, the samples table (with kept-frame strips), breakdown tables and plots; then close."""
        data = summary.to_json()  # the keys of summary.json, which the W&B report's panels name
        self.run.summary.update(flatten({"metrics": data["metrics"], "cost": data["cost"]}))
        table, strips = self._samples_table(results, videos or {})
        self.run.log({"samples": table, **strips, **self._breakdown_tables(summary), **self._plots(summary, results)})
        self.run.finish()

    def _samples_table(self, results: Sequence[SampleResult], videos: Mapping[str, str]) -> tuple[Any, dict[str, Any]]:
        """The table, and the frame strips again as standalone images: W&B keeps images inside a run table
        only in the table's artifact, which offline mode stages outside the run directory."""
        import wandb

        columns = sample_columns(results)
        rows, strips = [], {}
        for result in results:
            strip = None
            if len(strips) < STRIP_SAMPLES and result.status in ANSWERED and result.id in videos:
                pixels = kept_frames_strip(result, videos[result.id])
                if pixels is not None:
                    strip = wandb.Image(pixels, caption=f"{result.id}: {len(result.frame_indices)} frames kept")
                    strips[f"frames/{result.id}"] = strip
            rows.append(sample_row(result, columns, strip))
        return wandb.Table(columns=columns, data=rows), strips

    @staticmethod
    def _breakdown_tables(summary: RunSummary) -> dict[str, Any]:
        import wandb

        tables = {}
        costs = summary.breakdown_cost
        for key, groups in summary.metrics["breakdowns"].items():
            cost_columns = sorted({c for stats in costs.get(key, {}).values() for c in stats if c != "n"})
            rows = [[value, stats["n"], stats["accuracy"], *(costs.get(key, {}).get(value, {}).get(c) for c in cost_columns)]
                    for value, stats in groups.items()]
            tables[f"breakdown/{key}"] = wandb.Table(columns=[key, "n", "accuracy", *cost_columns], data=rows)
        return tables

    def _plots(self, summary: RunSummary, results: Sequence[SampleResult]) -> dict[str, Any]:
        """The run's figures, saved under <run_dir>/plots (with plots.json) and logged as images."""
        import wandb

        from harness.results.plots import run_figures, save

        label = str(summary.config.get("model", "run"))
        out = self.run_dir / "plots"
        figures = run_figures(label, results, summary.stages)
        infos = {name: save(fig, out / f"{name}.png") for name, fig in figures.items()}
        (out / "plots.json").write_text(json.dumps(infos, indent=2))
        return {f"plots/{name}": wandb.Image(str(out / info["file"]), caption=info["title"]) for name, info in infos.items()}
