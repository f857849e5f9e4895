"""Run summaries: summary.json (everything), summary.csv (one row), summary.md (tables a person reads)."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.paths import REPO_ROOT
from harness.records import SampleResult
from harness.scoring import summarize

PACKAGES = ("torch", "torchvision", "transformers", "datasets", "decord", "av", "ray", "wandb", "numpy")


def versions() -> dict[str, Any]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": packages,
            "git": git_version()}


def git_version() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    sha = git("rev-parse", "HEAD")
    return {"sha": sha or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if sha else None}


def cost(results: Sequence[SampleResult], wall_s: float) -> dict[str, float]:
    """Throughput, latency and memory over the samples that reached the model."""
    ran = [r for r in results if r.status in ("ok", "unparsed")]
    latency = np.array([r.timings_s.get("total", 0.0) for r in results]) if results else np.zeros(1)
    stages = sorted({k for r in ran for k in r.timings_s})
    return {
        "wall_s": wall_s,
        "samples_per_s": len(results) / wall_s if wall_s > 0 else 0.0,
        "frames_per_s": sum(r.n_frames_decoded for r in results) / wall_s if wall_s > 0 else 0.0,
        "latency_mean_s": float(latency.mean()),
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p95_s": float(np.percentile(latency, 95)),
        "visual_tokens_mean": float(np.mean([r.visual_tokens for r in ran])) if ran else 0.0,
        "frames_used_mean": float(np.mean([len(r.frame_indices) for r in ran])) if ran else 0.0,
        "frames_decoded_mean": float(np.mean([r.n_frames_decoded for r in ran])) if ran else 0.0,
        "needle_retention": float(np.mean([r.needle_retained for r in ran if r.needle_retained is not None]))
        if any(r.needle_retained is not None for r in ran) else float("nan"),
        "peak_memory_mb": max((r.peak_rss_mb for r in results), default=0.0),
        **{f"stage_{k}_mean_s": float(np.mean([r.timings_s.get(k, 0.0) for r in ran])) for k in stages},
    }


def build_summary(results: Sequence[SampleResult], breakdown_keys: Sequence[str], wall_s: float,
                  config: dict[str, Any]) -> dict[str, Any]:
    return {"config": config, "versions": versions(), "metrics": summarize(results, breakdown_keys),
            "cost": cost(results, wall_s)}


def table_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The one-line view of a run used by summary.csv and summary.md."""
    m, c, cfg = summary["metrics"], summary["cost"], summary["config"]
    row: dict[str, Any] = {
        "task": cfg["task"], "model": cfg["model"], "n": m["n"],
        "accuracy": round(m["accuracy"], 2), "stderr": round(m["accuracy_stderr"], 2),
        "parse_fail_%": round(100 * m["parse_failure_rate"], 1), "fail_%": round(100 * m["failure_rate"], 1),
        "visual_tokens": round(c["visual_tokens_mean"], 1), "frames_used": round(c["frames_used_mean"], 1),
        "needle_retention": round(c["needle_retention"], 3), "samples/s": round(c["samples_per_s"], 3),
        "frames/s": round(c["frames_per_s"], 1), "latency_p50_s": round(c["latency_p50_s"], 3),
        "latency_p95_s": round(c["latency_p95_s"], 3), "peak_mem_mb": round(c["peak_memory_mb"], 1),
    }
    for key, groups in m["breakdowns"].items():
        for value, stats in groups.items():
            row[f"{key}={value}"] = round(stats["accuracy"], 2)
    return row


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(summary: dict[str, Any]) -> str:
    m, cfg = summary["metrics"], summary["config"]
    head = {k: v for k, v in table_row(summary).items() if "=" not in k}
    parts = [f"# {cfg['task']} × {cfg['model']}", "", markdown_table([head]), ""]
    for key, groups in m["breakdowns"].items():
        rows = [{key: value, "accuracy": round(s["accuracy"], 2), "n": s["n"]} for value, s in groups.items()]
        parts += [f"## accuracy by {key}", "", markdown_table(rows), ""]
    parts += [f"status counts: {m['status_counts']}", ""]
    return "\n".join(parts)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    row = table_row(summary)
    with (run_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    (run_dir / "summary.md").write_text(render_markdown(summary))
