"""Weights & Biases logging from the driver: config, live progress, summary metrics, a samples table.

Offline unless the user sets WANDB_MODE=online (then `wandb sync` is not needed). Only the resolved
run config is logged — never environment variables, so no API key can reach W&B config or results.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.records import SampleResult

SAMPLE_COLUMNS = ("id", "status", "gold", "pred", "correct", "raw_output", "visual_tokens", "n_frames_decoded",
                  "needle_retained", "total_s", "peak_rss_mb")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


class WandbSink:
    def __init__(self, run_dir: Path, run_id: str, config: dict[str, Any], group: str | None = None) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "vilamp-harness"),
            mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
            dir=str(run_dir),
            name=run_id,
            group=group or config.get("task"),
            job_type="eval",
            config=config,
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
        self.done = 0
        self.correct = 0

    @property
    def run_path(self) -> str:
        return str(Path(self.run.dir).parent)

    def log_sample(self, result: SampleResult) -> None:
        self.done += 1
        self.correct += result.correct
        self.run.log({"samples_done": self.done, "running_accuracy": 100.0 * self.correct / self.done,
                      "latency_s": result.timings_s.get("total", 0.0), "visual_tokens": result.visual_tokens})

    def finish(self, summary: dict[str, Any], results: Sequence[SampleResult]) -> None:
        import wandb

        self.run.summary.update(flatten({"metrics": summary["metrics"], "cost": summary["cost"]}))
        rows = [[r.id, r.status, r.gold, r.pred, r.correct, r.raw_output, r.visual_tokens, r.n_frames_decoded,
                 r.needle_retained, r.timings_s.get("total", 0.0), r.peak_rss_mb] for r in results]
        self.run.log({"samples": wandb.Table(columns=list(SAMPLE_COLUMNS), data=rows)})
        self.run.finish()
