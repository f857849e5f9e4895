"""Aggregate per-sample results into accuracy (0–100), breakdowns and failure counts."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from harness.core.records import SampleResult
from harness.core.status import ANSWERED


def clustered_stderr(values: Sequence[float], clusters: Sequence[str]) -> float:
    """Standard error of the mean with questions on the same video treated as one cluster."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    sums: dict[str, float] = defaultdict(float)
    for value, cluster in zip(values, clusters, strict=True):
        sums[cluster] += value - mean
    k = len(sums)
    if k < 2:
        return 0.0
    return math.sqrt(sum(s * s for s in sums.values()) * k / (k - 1)) / n


def accuracy(results: Sequence[SampleResult]) -> float:
    return 100.0 * sum(r.correct for r in results) / len(results) if results else 0.0


def accuracy_stderr(results: Sequence[SampleResult], cluster_key: str) -> float:
    """The clustered standard error of `accuracy(results)`, in points."""
    return 100.0 * clustered_stderr([float(r.correct) for r in results], [getattr(r, cluster_key) for r in results])


def needle_split(results: Sequence[SampleResult], cluster_key: str) -> dict[str, float | int | None]:
    """Accuracy, its clustered s.e. and the count over the samples whose needle reached the model (every evidence
    span kept a frame: `needle_retained`) and over those whose needle was lost; {} when no sample knows (a task
    without evidence spans). An empty side's figures are None, not NaN, so summaries still compare equal."""
    if all(r.needle_retained is None for r in results):
        return {}
    split: dict[str, float | int | None] = {}
    for side, retained in (("retained", True), ("lost", False)):
        group = [r for r in results if r.needle_retained is retained]
        split[f"accuracy_needle_{side}"] = accuracy(group) if group else None
        split[f"accuracy_needle_{side}_stderr"] = accuracy_stderr(group, cluster_key) if group else None
        split[f"n_needle_{side}"] = len(group)
    return split


def summarize(results: Sequence[SampleResult], breakdown_keys: Sequence[str], cluster_key: str = "video_id"
              ) -> dict[str, object]:
    """Every figure a run reports about answers; labelled samples only count towards accuracy. Where samples
    know whether their needle was retained, accuracy is also split by it (`needle_split`), overall and per
    breakdown value (`needle_breakdowns`)."""
    scored = [r for r in results if r.gold is not None]
    answered = [r for r in scored if r.status in ANSWERED]
    statuses = Counter(r.status for r in results)
    grouped: dict[str, dict[str, list[SampleResult]]] = {}
    for key in breakdown_keys:
        groups: dict[str, list[SampleResult]] = defaultdict(list)
        for r in scored:
            groups[r.breakdown.get(key, "?")].append(r)
        grouped[key] = dict(sorted(groups.items()))
    breakdowns = {key: {value: {"accuracy": accuracy(group), "n": len(group)} for value, group in groups.items()}
                  for key, groups in grouped.items()}
    split = needle_split(scored, cluster_key)
    needle_breakdowns = {key: {value: needle_split(group, cluster_key) for value, group in groups.items()}
                         for key, groups in grouped.items()}
    with_video = [r for r in scored if r.status != "missing"]
    return {
        "n": len(results),
        "n_scored": len(scored),
        # NaN, not 0, when no sample has a gold answer (e.g. EgoSchema's full set): no score is invented
        "accuracy": accuracy(scored) if scored else float("nan"),
        "n_with_video": len(with_video),  # scored samples whose video file exists
        "accuracy_with_video": accuracy(with_video) if with_video else float("nan"),
        "accuracy_stderr": accuracy_stderr(scored, cluster_key),
        "accuracy_answered": accuracy(answered),  # excluding decode / model failures
        **split,
        "parse_failure_rate": statuses.get("unparsed", 0) / len(results) if results else 0.0,
        "failure_rate": sum(v for k, v in statuses.items() if k not in ANSWERED) / len(results)
        if results else 0.0,
        "status_counts": dict(sorted(statuses.items())),
        "breakdowns": breakdowns,
        **({"needle_breakdowns": needle_breakdowns} if split else {}),
    }


def macro_average(breakdown: dict[str, dict[str, float]]) -> float:
    """Unweighted mean of per-group accuracies (MLVU's M-Avg over task types), over the groups present."""
    values = [group["accuracy"] for group in breakdown.values()]
    return sum(values) / len(values) if values else float("nan")


def task_metrics(metrics: dict[str, object], name: str, macro_over: str | None) -> dict[str, object]:
    """Metric-specific headline figures under keys of their own, next to `summarize`'s in a run's metrics."""
    if name != "mavg" or macro_over is None:
        return {}
    groups = metrics["breakdowns"][macro_over]  # type: ignore[index]
    return {"mavg": macro_average(groups), "mavg_over": macro_over, "mavg_groups": len(groups)}


def submission(results: Sequence[SampleResult], key: str) -> dict[str, int]:
    """{id or video_id: predicted 0-based index}, -1 where nothing was parsed (EgoSchema's server format)."""
    return {getattr(r, key): (-1 if r.pred is None else r.pred) for r in sorted(results, key=lambda r: r.id)}
