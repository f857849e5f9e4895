"""Aggregate per-sample results into accuracy (0–100), breakdowns and failure counts."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from harness.records import SampleResult


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


def summarize(results: Sequence[SampleResult], breakdown_keys: Sequence[str]) -> dict[str, object]:
    """Every figure a run reports about answers; labelled samples only count towards accuracy."""
    scored = [r for r in results if r.gold is not None]
    answered = [r for r in scored if r.status in ("ok", "unparsed")]
    statuses = Counter(r.status for r in results)
    breakdowns: dict[str, dict[str, dict[str, float]]] = {}
    for key in breakdown_keys:
        groups: dict[str, list[SampleResult]] = defaultdict(list)
        for r in scored:
            groups[r.breakdown.get(key, "?")].append(r)
        breakdowns[key] = {
            value: {"accuracy": accuracy(group), "n": len(group)} for value, group in sorted(groups.items())
        }
    return {
        "n": len(results),
        "n_scored": len(scored),
        "accuracy": accuracy(scored),
        "accuracy_stderr": 100.0 * clustered_stderr([float(r.correct) for r in scored], [r.video_id for r in scored]),
        "accuracy_answered": accuracy(answered),  # excluding decode / model failures
        "parse_failure_rate": statuses.get("unparsed", 0) / len(results) if results else 0.0,
        "failure_rate": sum(v for k, v in statuses.items() if k not in ("ok", "unparsed")) / len(results)
        if results else 0.0,
        "status_counts": dict(sorted(statuses.items())),
        "breakdowns": breakdowns,
    }
