"""Run summaries: the typed `RunSummary`, written as summary.json (everything), summary.csv (one row) and
summary.md (tables a person reads)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import math
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.core.paths import REPO_ROOT
from harness.core.records import SampleResult
from harness.core.status import ANSWERED
from harness.scoring.metrics import summarize, task_metrics

if TYPE_CHECKING:
    from harness.data.tasks import MetricSpec
    from harness.run.config import RunStats

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


# Stages before the first generated token; their sum is the sample's time to first token.
FIRST_TOKEN_STAGES = ("video_decode", "select", "vision", "reduce", "llm_prefill")
# in order: harness/model/video_model.py's stage timers, then the backbone's, prefixed llm_ (harness/run/pipeline.py)
STAGES = (*FIRST_TOKEN_STAGES, "llm_decode")
# SampleResult fields summarised explicitly in `cost`; any other numeric field gets a generic mean.
_COVERED = {"gold", "pred", "visual_tokens", "text_tokens", "generated_tokens", "n_frames_decoded", "peak_rss_mb",
            "attempts"}


def ttft_s(result: SampleResult) -> float:
    """Seconds from the sample's start until its first generated token (decode, select, encode, prefill)."""
    return sum(result.timings_s.get(stage, 0.0) for stage in FIRST_TOKEN_STAGES)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def numeric_means(results: Sequence[SampleResult]) -> dict[str, float]:
    """Means of numeric per-sample fields not covered explicitly (fields added by new methods, e.g. keyframes)."""
    fields = {k for r in results for k, v in vars(r).items()
              if isinstance(v, int | float) and not isinstance(v, bool) and k not in _COVERED}
    return {f"{k}_mean": _mean([getattr(r, k) for r in results if getattr(r, k, None) is not None])
            for k in sorted(fields)}


def stage_costs(results: Sequence[SampleResult]) -> dict[str, float]:
    """{stage: mean seconds} over the samples that reached the model, every timer name ("total" too) by name."""
    ran = [r for r in results if r.status in ANSWERED]
    stages = sorted({k for r in ran for k in r.timings_s})
    return {k: float(np.mean([r.timings_s.get(k, 0.0) for r in ran])) for k in stages}


def cost(results: Sequence[SampleResult], wall_s: float, timed: Sequence[SampleResult] | None = None
         ) -> dict[str, float]:
    """Throughput, latency, tokens and memory; per-sample means over the samples that reached the model.
    Throughput counts `timed`, the samples run within `wall_s` (default all; a resumed run's earlier ones not).
    Per-stage seconds are `stage_costs`."""
    ran = [r for r in results if r.status in ANSWERED]
    timed = results if timed is None else timed
    latency = np.array([r.timings_s.get("total", 0.0) for r in results]) if results else np.zeros(1)
    ttft = np.array([ttft_s(r) for r in ran]) if ran else np.zeros(1)
    memory = np.array([r.peak_rss_mb for r in results]) if results else np.zeros(1)
    decode_s = sum(r.timings_s.get("llm_decode", 0.0) for r in ran)
    return {
        "wall_s": wall_s,
        "samples_per_s": len(timed) / wall_s if wall_s > 0 else 0.0,
        "frames_per_s": sum(r.n_frames_decoded for r in timed) / wall_s if wall_s > 0 else 0.0,
        "latency_mean_s": float(latency.mean()),
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p95_s": float(np.percentile(latency, 95)),
        "visual_tokens_mean": float(np.mean([r.visual_tokens for r in ran])) if ran else 0.0,
        "frames_used_mean": float(np.mean([len(r.frame_indices) for r in ran])) if ran else 0.0,
        "frames_decoded_mean": float(np.mean([r.n_frames_decoded for r in ran])) if ran else 0.0,
        "needle_retention": float(np.mean([r.needle_retained for r in ran if r.needle_retained is not None]))
        if any(r.needle_retained is not None for r in ran) else float("nan"),
        "peak_memory_mb": max((r.peak_rss_mb for r in results), default=0.0),
        "latency_max_s": float(latency.max()),
        "ttft_mean_s": float(ttft.mean()),
        "ttft_p50_s": float(np.percentile(ttft, 50)),
        "ttft_p95_s": float(np.percentile(ttft, 95)),
        "text_tokens_mean": _mean([r.text_tokens for r in ran]),
        "generated_tokens_mean": _mean([r.generated_tokens for r in ran]),
        "decode_tokens_per_s": sum(r.generated_tokens for r in ran) / decode_s if decode_s > 0 else 0.0,
        "frames_used_per_s": sum(len(r.frame_indices) for r in timed if r.status in ANSWERED) / wall_s
        if wall_s > 0 else 0.0,
        "peak_memory_mean_mb": float(memory.mean()),
        "peak_memory_p95_mb": float(np.percentile(memory, 95)),
        **numeric_means(ran),
    }


def breakdown_cost(results: Sequence[SampleResult], breakdown_keys: Sequence[str]) -> dict[str, Any]:
    """Per breakdown value: needle retention, tokens, latency and memory (accuracy is in metrics.breakdowns)."""
    out: dict[str, Any] = {}
    for key in breakdown_keys:
        groups: dict[str, list[SampleResult]] = {}
        for r in results:
            if r.status in ANSWERED:
                groups.setdefault(r.breakdown.get(key, "?"), []).append(r)
        out[key] = {value: {
            "n": len(group),
            "needle_retention": _mean([r.needle_retained for r in group if r.needle_retained is not None])
            if any(r.needle_retained is not None for r in group) else float("nan"),
            "visual_tokens_mean": _mean([r.visual_tokens for r in group]),
            "frames_used_mean": _mean([len(r.frame_indices) for r in group]),
            "latency_mean_s": _mean([r.timings_s.get("total", 0.0) for r in group]),
            "peak_memory_mean_mb": _mean([r.peak_rss_mb for r in group]),
        } for value, group in sorted(groups.items())}
    return out


def headline(metrics: Mapping[str, Any]) -> float | None:
    """A run's headline figure (0–100): M-Avg where the task defines it, else accuracy; None when unscored."""
    value = metrics.get("mavg", metrics.get("accuracy"))
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def code_sha(obj: Any) -> str | None:
    """Short hash of a component's source: changes whenever its code does, so drift shows in results. A class
    counts with the project's classes it inherits from (`tiny` is a few lines over the LLaVA-OV backbone)."""
    target = obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj)
    parts = [c for c in getattr(target, "__mro__", (target,)) if c.__module__.split(".")[0] in ("harness", "baselines")]
    try:
        source = "".join(inspect.getsource(part) for part in parts or [target])
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:10]


def extractor_protocol(name: str | None) -> dict[str, Any]:
    """An extractor's name, its module's VERSION and a hash of its whole module (its helpers read the reply too)."""
    from harness.scoring.extract import EXTRACTORS

    if not name:
        return {"name": None, "version": None, "code_sha": None}
    module = inspect.getmodule(EXTRACTORS.get(name))
    source = inspect.getsource(module) if module else ""
    return {"name": name, "version": getattr(module, "VERSION", None),
            "code_sha": hashlib.sha256(source.encode()).hexdigest()[:10] if source else None}


def protocol(config: Mapping[str, Any]) -> dict[str, Any]:
    """Versions of what shapes an answer besides the model: task, prompt text, extractor, sampler, reducer."""
    from harness.backbones import BACKBONES
    from harness.methods.reduction import REDUCERS
    from harness.methods.selection import SELECTORS

    def component(registry: Any, part: dict[str, Any] | None) -> dict[str, Any]:
        if not part:
            return {}
        obj = registry.get(part["name"])
        module = inspect.getmodule(obj)
        return {**part, "code_sha": code_sha(obj), "version": getattr(obj, "VERSION", getattr(module, "VERSION", None))}

    spec = config.get("model_spec", {})
    profile = config.get("prompt_profile")
    prompt = config.get("task_spec", {}).get("prompts", {}).get(profile, {})
    extractor = config.get("extractor")
    return {
        "task_version": config.get("task_version"),
        "prompt": {"profile": profile,
                   "sha": hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:10]},
        "extractor": extractor_protocol(extractor),
        "sampler": component(SELECTORS, spec.get("selector")),
        "reducer": component(REDUCERS, spec.get("reducer")),
        "backbone": component(BACKBONES, spec.get("backbone")),
    }


def provenance(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's results depend on besides its config: package and git versions, the protocol's code."""
    return {"versions": versions(), "protocol": protocol(config)}


@dataclass(frozen=True)
class RunSummary:
    """What one run reports, built once by `build_summary`; `to_json` is summary.json."""

    config: Mapping[str, Any]  # the resolved run config
    provenance: Mapping[str, Any]  # {"versions", "protocol"}: see `provenance`
    metrics: Mapping[str, Any]  # `summarize`, plus the task's own headline figures (MLVU: mavg)
    cost: Mapping[str, float]  # see `cost`
    stages: Mapping[str, float]  # see `stage_costs`
    breakdown_cost: Mapping[str, Any]  # see `breakdown_cost`
    runner: Mapping[str, Any] | None = None  # the runner's RunStats: retries, replaced workers, start-up time
    submission_file: str | None = None  # predictions of an unlabelled split for the authors' server

    def to_json(self) -> dict[str, Any]:
        """summary.json's layout: stages as cost["stage_<name>_mean_s"], the submission file in metrics."""
        submission = {"submission_file": self.submission_file} if self.submission_file else {}
        return {"config": dict(self.config), **self.provenance, "metrics": {**self.metrics, **submission},
                "cost": {**self.cost, **{f"stage_{k}_mean_s": v for k, v in self.stages.items()}},
                "breakdown_cost": dict(self.breakdown_cost),
                **({"runner": dict(self.runner)} if self.runner is not None else {})}


def build_summary(results: Sequence[SampleResult], metric: MetricSpec, wall_s: float, config: Mapping[str, Any],
                  *, timed: Sequence[SampleResult] | None = None, stats: RunStats | None = None,
                  origin: Mapping[str, Any] | None = None, submission_file: str | None = None) -> RunSummary:
    """The run's summary. `timed`: the results run within `wall_s`, i.e. this session's (see `cost`); `stats`:
    the runner's; `origin`: `provenance(config)` when the caller already has it."""
    answers = summarize(results, metric.breakdown, metric.cluster_key)
    return RunSummary(
        config=config, provenance=origin or provenance(config),
        metrics={**answers, **task_metrics(answers, metric.name, metric.macro_over)},
        cost=cost(results, wall_s, timed), stages=stage_costs(results),
        breakdown_cost=breakdown_cost(results, metric.breakdown),
        runner=None if stats is None else dataclasses.asdict(stats), submission_file=submission_file)


def table_row(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The one-line view of a run used by summary.csv, summary.md and compare. It reads summary.json's layout
    (`RunSummary.to_json`), so compare can use it on the files of any run."""
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
    if "visual_tokens_after_llm_prune_mean" in c:  # in-LLM pruning (FastV): what remains from layer K on
        row["visual_tokens_after_llm_prune"] = round(c["visual_tokens_after_llm_prune_mean"], 1)
    if "ttft_mean_s" in c:  # summaries written before these figures existed lack them
        row.update({"latency_mean_s": round(c["latency_mean_s"], 3), "ttft_mean_s": round(c["ttft_mean_s"], 3),
                    "text_tokens": round(c["text_tokens_mean"], 1), "gen_tokens": round(c["generated_tokens_mean"], 1)})
    if "accuracy_with_video" in m:  # benchmark tasks: missing videos count as wrong in `accuracy` only
        row["acc_with_video"] = round(m["accuracy_with_video"], 2)
    if "mavg" in m:  # MLVU's headline: unweighted mean over task types
        row["m_avg"] = round(m["mavg"], 2)
    if "n_needle_retained" in m:  # needle tasks: accuracy where the needle reached the model vs where it was lost
        row.update(needle_columns(m, stderr=True))
    for key, groups in m["breakdowns"].items():
        for value, stats in groups.items():
            row[f"{key}={value}"] = round(stats["accuracy"], 2)
    return row


def needle_columns(split: Mapping[str, Any], stderr: bool = False) -> dict[str, Any]:
    """`metrics.needle_split`'s figures as table columns; an empty side's accuracy is a blank cell."""
    columns: dict[str, Any] = {}
    for side in ("retained", "lost"):
        columns[f"acc_needle_{side}"] = _points(split[f"accuracy_needle_{side}"])
        if stderr:
            columns[f"stderr_needle_{side}"] = _points(split[f"accuracy_needle_{side}_stderr"])
        columns[f"n_needle_{side}"] = split[f"n_needle_{side}"]
    return columns


def _points(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(summary: RunSummary) -> str:
    m, cfg = summary.metrics, summary.config
    head = {k: v for k, v in table_row(summary.to_json()).items() if "=" not in k}
    parts = [f"# {cfg['task']} × {cfg['model']}", "", markdown_table([head]), ""]
    by_cost, by_needle = summary.breakdown_cost, m.get("needle_breakdowns", {})
    for key, groups in m["breakdowns"].items():
        rows = []
        for value, s in groups.items():
            row = {key: value, "accuracy": round(s["accuracy"], 2), "n": s["n"]}
            c = by_cost.get(key, {}).get(value)
            if c:
                row.update({"needle_retention": round(c["needle_retention"], 3),
                            "visual_tokens": round(c["visual_tokens_mean"], 1),
                            "latency_mean_s": round(c["latency_mean_s"], 3),
                            "peak_mem_mb": round(c["peak_memory_mean_mb"], 1)})
            if split := by_needle.get(key, {}).get(value):
                row.update(needle_columns(split))
            rows.append(row)
        parts += [f"## accuracy by {key}", "", markdown_table(rows), ""]
    stages = {k: v for k, v in summary.stages.items() if k != "total"}
    if stages:
        parts += ["mean seconds per stage: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()), ""]
    parts += [f"status counts: {m['status_counts']}", ""]
    return "\n".join(parts)


def write_summary(run_dir: Path, summary: RunSummary) -> None:
    data = summary.to_json()
    (run_dir / "summary.json").write_text(json.dumps(data, indent=2, default=str))
    row = table_row(data)
    with (run_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    (run_dir / "summary.md").write_text(render_markdown(summary))
