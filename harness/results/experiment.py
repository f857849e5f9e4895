"""What a paper's comparison needs beyond one table: a paired test against a reference on the same samples, the
Pareto frontier of accuracy against cost, per-method curves, and the specs × tasks table.

The paired test reads two runs of one task sample by sample: McNemar's exact test on the discordant pairs (one
run right, the other wrong), and a paired bootstrap over the task's clusters (questions on one video move
together) for a 95% interval of the accuracy difference. Both are deterministic (the bootstrap is seeded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core.records import SampleResult

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 15


@dataclass(frozen=True)
class PairedTest:
    n: int  # samples both runs hold
    difference: float  # accuracy(candidate) - accuracy(reference), points
    ci_low: float  # 95% paired cluster bootstrap interval of the difference, points
    ci_high: float
    only_candidate: int  # discordant pairs: candidate right, reference wrong
    only_reference: int
    p_value: float  # McNemar's exact two-sided test on the discordant pairs


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs split as Binomial(b + c, 1/2) under no difference."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_test(candidate: Sequence[SampleResult], reference: Sequence[SampleResult],
                cluster_key: str = "video_id") -> PairedTest:
    """The candidate run against the reference on the samples both hold (a failed sample counts as wrong)."""
    ref = {r.id: r for r in reference}
    pairs = [(c, ref[c.id]) for c in candidate if c.id in ref]
    if not pairs:
        raise ValueError("the runs share no sample ids: a paired test needs the same samples")
    right = np.array([[c.correct, r.correct] for c, r in pairs], dtype=float)
    only_c = int(((right[:, 0] == 1) & (right[:, 1] == 0)).sum())
    only_r = int(((right[:, 0] == 0) & (right[:, 1] == 1)).sum())
    clusters: dict[str, list[int]] = {}
    for i, (c, _) in enumerate(pairs):
        clusters.setdefault(str(getattr(c, cluster_key) or c.id), []).append(i)
    groups = list(clusters.values())
    sums = np.array([right[g, 0].sum() - right[g, 1].sum() for g in groups])
    sizes = np.array([len(g) for g in groups], dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(len(groups), size=(BOOTSTRAP_SAMPLES, len(groups)))
    boot = 100.0 * sums[draws].sum(1) / sizes[draws].sum(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return PairedTest(len(pairs), 100.0 * float(right[:, 0].mean() - right[:, 1].mean()), float(low), float(high),
                      only_c, only_r, mcnemar_exact(only_c, only_r))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other beats on both cost (x, lower is better) and accuracy (y, higher), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def method_of(model: str) -> str:
    """The method a spec belongs to on a curve: its name before the overrides (`tiny-uniform@selector.n=8`); a
    budget-matched cell (`@selector.budget=…`) is a method of its own, not a point of the frame-count curve."""
    base, _, overrides = model.partition("@")
    return f"{base} (budget-matched)" if "selector.budget=" in overrides else base


def task_table(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows = specs, columns = tasks; each cell accuracy (M-Avg for MLVU) ± clustered s.e., mean visual tokens and
    latency p50, then the task's first breakdown (accuracy and n per value). Returns (tasks, rows)."""
    from harness.results.summary import headline

    tasks = list(dict.fromkeys(s["config"]["task"] for s in summaries))
    rows: dict[str, dict[str, Any]] = {}
    for s in summaries:
        model, task, metrics, cost = s["config"]["model"], s["config"]["task"], s["metrics"], s["cost"]
        figure = headline(metrics)
        stderr = metrics.get("accuracy_stderr") if "mavg" not in metrics else None
        spread = f" ± {stderr:.1f}" if stderr is not None and not math.isnan(stderr) else ""
        row = rows.setdefault(model, {"model": model})
        row[task] = ("–" if figure is None else
                     f"{figure:.1f}{spread} · {cost['visual_tokens_mean']:.0f} tok · {cost['latency_p50_s']:.2f} s")
        breakdowns = metrics.get("breakdowns", {})
        if breakdowns:  # the task's headline breakdown (its first: VideoMME by duration, needle by kind)
            for value, group in sorted(next(iter(breakdowns.values())).items()):
                row[f"{task}: {value}"] = f"{group['accuracy']:.1f} ({group['n']})"
    return tasks, list(rows.values())


def curves(points: Sequence[tuple[str, float, float, float]], xlabel: str, title: str):
    """Accuracy (± s.e.) against a cost per method (one line each, by `method_of`), and the Pareto frontier over
    all points; `points` are (label, cost, accuracy, s.e.)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    methods = list(dict.fromkeys(method_of(label) for label, *_ in points))
    for i, method in enumerate(methods):
        mine = sorted((x, y, e) for label, x, y, e in points if method_of(label) == method)
        ax.errorbar([x for x, _, _ in mine], [y for _, y, _ in mine], yerr=[e for *_, e in mine], capsize=3,
                    marker="osD^vPX*<>"[i % 10], color=f"C{i % 10}", label=method, alpha=0.85)
    front = [points[i] for i in pareto_front([(x, y) for _, x, y, _ in points])]
    ax.plot([p[1] for p in front], [p[2] for p in front], color="black", linestyle="--", linewidth=1,
            label="Pareto frontier", zorder=0)
    xs = [p[1] for p in points]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig
