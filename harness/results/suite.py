"""A suite's table: one row per spec, one column per task's headline figure (accuracy ± clustered s.e., or MLVU's
M-Avg) with its sample count, and the mean over the tasks; suite.md and suite.csv beside the tasks' run
directories, the figures in suite.json (which also maps each task to its run directory, for `--resume`)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.results.summary import headline

SUITE_FILE = "suite.json"


def suite_row(model: str, summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One spec's row from its tasks' summary.json contents (task → summary)."""
    row: dict[str, Any] = {"model": model}
    figures = []
    for task, summary in summaries.items():
        metrics = summary["metrics"]
        figure = headline(metrics)
        row[task] = None if figure is None else round(figure, 2)
        if "mavg" not in metrics and figure is not None:
            row[f"{task}_stderr"] = round(float(metrics.get("accuracy_stderr", math.nan)), 2)
        row[f"{task}_n"] = metrics.get("n", 0)
        if figure is not None:
            figures.append(figure)
    row["mean"] = round(sum(figures) / len(figures), 2) if figures else None
    cost = [s["cost"] for s in summaries.values()]
    row["visual_tokens"] = round(sum(c["visual_tokens_mean"] for c in cost) / len(cost), 1) if cost else None
    return row


def render_suite(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> str:
    """The markdown table: a column per task (figure ± s.e. (n)), then the mean and the mean visual tokens."""
    lines = ["| model | " + " | ".join(tasks) + " | mean | visual tokens |", "|---" * (len(tasks) + 3) + "|"]
    for row in rows:
        cells = []
        for task in tasks:
            figure = row.get(task)
            if figure is None:
                cells.append(f"– ({row.get(f'{task}_n', 0)})")
                continue
            stderr = row.get(f"{task}_stderr")
            spread = f" ± {stderr:.1f}" if stderr is not None and not math.isnan(stderr) else ""
            cells.append(f"{figure:.1f}{spread} ({row[f'{task}_n']})")
        mean = "–" if row.get("mean") is None else f"{row['mean']:.1f}"
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {mean} | {row.get('visual_tokens', '–')} |")
    return "\n".join(lines)


def write_suite_table(suite_dir: Path, model: str, outcomes: Sequence[Any], stats: Any = None) -> Path:
    """suite.md / suite.csv, and the row (plus the runner's stats) added to suite.json; returns suite.md."""
    summaries = {o.summary.config["task"]: o.summary.to_json() for o in outcomes}
    row = suite_row(model, summaries)
    tasks = list(summaries)
    index = json.loads((suite_dir / SUITE_FILE).read_text())
    index.update({"table": [row], "runner": dataclasses.asdict(stats) if stats is not None else None})
    (suite_dir / SUITE_FILE).write_text(json.dumps(index, indent=2, default=str) + "\n")
    with (suite_dir / "suite.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    text = (f"# {index['suite']} × {model}\n\nHeadline per task (accuracy ± clustered s.e., MLVU: M-Avg; samples in "
            f"brackets); runs: {', '.join(index['runs'].values())}\n\n{render_suite([row], tasks)}\n")
    (suite_dir / "suite.md").write_text(text)
    return suite_dir / "suite.md"
