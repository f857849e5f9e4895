"""Side-by-side comparison of finished runs: `python -m harness compare RUN_DIR… [--out DIR]`.

Reads each run's summary.json and samples.jsonl (never re-runs a model) and writes into the output
directory: compare.csv (one row per run), compare.md (the report: tables and plots), the PNGs and
plots.json (what each PNG's axes show). When WANDB_MODE=online and `wandb-workspaces` is installed the
same comparison is also published through the W&B Reports API.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.records import SampleResult
from harness.results.summary import markdown_table, stage_costs, table_row
from harness.run.journal import read_journal


class CompareError(ValueError):
    """A run directory that cannot be compared; the message names it and what to do."""


@dataclass(frozen=True)
class Run:
    path: Path
    summary: dict[str, Any]  # summary.json as written (`RunSummary.to_json`), of whichever version wrote it
    results: list[SampleResult]

    @property
    def label(self) -> str:
        return str(self.summary["config"]["model"])

    @property
    def run_id(self) -> str:
        return str(self.summary["config"].get("run_id", self.path.name))


def load_run(path: Path) -> Run:
    summary_file = path / "summary.json"
    if not summary_file.is_file():
        raise CompareError(f"{summary_file} not found: pass run directories written by `harness eval`")
    try:
        summary = json.loads(summary_file.read_text())
        summary["config"]["model"], summary["metrics"], summary["cost"]  # noqa: B018 - fields compare needs
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CompareError(f"{summary_file}: not a harness summary ({exc!r}); re-run `harness eval`") from None
    return Run(path, summary, list(read_journal(path / "samples.jsonl")))


def labelled(runs: Sequence[Run]) -> list[tuple[str, Run]]:
    """Model names as labels; task and a counter are added only where they would collide."""
    labels = [r.label if sum(x.label == r.label for x in runs) == 1 else f"{r.summary['config']['task']}/{r.label}"
              for r in runs]
    return [(label if labels.count(label) == 1 else f"{label}#{i + 1}", run)
            for i, (label, run) in enumerate(zip(labels, runs, strict=True))]


def comparison_rows(runs: Sequence[tuple[str, Run]]) -> list[dict[str, Any]]:
    return [{"run": label, **table_row(run.summary), "run_id": run.run_id} for label, run in runs]


def breakdown_table(runs: Sequence[tuple[str, Run]], key: str) -> list[dict[str, Any]]:
    """Accuracy per value of breakdown `key`, one column per run."""
    from harness.results.plots import bucket_order

    values = sorted({v for _, r in runs for v in r.summary["metrics"]["breakdowns"].get(key, {})}, key=bucket_order)
    rows = []
    for value in values:
        row: dict[str, Any] = {key: value}
        for label, run in runs:
            stats = run.summary["metrics"]["breakdowns"].get(key, {}).get(value)
            row[label] = f"{stats['accuracy']:.1f} (n={stats['n']})" if stats else ""
        rows.append(row)
    return rows


def figures(runs: Sequence[tuple[str, Run]]) -> dict[str, Any]:
    from harness.results.plots import Point, needle_heatmaps, scatter, stage_breakdown

    def point(label: str, run: Run, x: str, y: str, yerr: str | None = None) -> Point:
        source = {**run.summary["cost"], **run.summary["metrics"]}
        return Point(label, float(source[x]), float(source[y]), float(source[yerr]) if yerr else 0.0)

    stages = [(label, stage_costs(run.results)) for label, run in runs]  # the summary's means, from the journal
    return {
        "accuracy_vs_visual_tokens": scatter(
            [point(label, run, "visual_tokens_mean", "accuracy", "accuracy_stderr") for label, run in runs],
            "visual tokens per sample (mean)", "accuracy (%)", "accuracy vs visual tokens", ylim=(-3, 103)),
        "peak_memory_vs_frames": scatter(
            [point(label, run, "frames_used_mean", "peak_memory_mb") for label, run in runs],
            "frames reaching the model per sample (mean)", "peak memory per sample (MB, max over run)",
            "peak memory vs frames"),
        "latency_by_stage": stage_breakdown(stages),
        **needle_heatmaps([(label, run.results) for label, run in runs]),
    }


def render_report(runs: Sequence[tuple[str, Run]], rows: Sequence[dict[str, Any]], plots: dict[str, dict[str, Any]],
                  title: str, table: Sequence[dict[str, Any]] = (), paired: Sequence[dict[str, Any]] = (),
                  reference: str | None = None) -> str:
    same = all(row["run"] == row["model"] for row in rows)  # the label column only matters when it differs
    head = [{k: v for k, v in row.items() if "=" not in k and k != "run_id" and not (same and k == "run")}
            for row in rows]
    parts = [f"# {title}", "", markdown_table(head), ""]
    if table:
        parts += ["## specs × tasks", "", "accuracy (MLVU: M-Avg) ± clustered s.e. · mean visual tokens · latency p50",
                  "", markdown_table(list(table)), ""]
    if paired:
        parts += [f"## paired against {reference}", "", "difference in points (candidate − reference) on the "
                  "samples both runs hold, its 95% paired cluster-bootstrap interval, discordant pairs (wins / "
                  "losses) and McNemar's exact p", "", markdown_table(list(paired)), ""]
    keys = list(dict.fromkeys(k for _, r in runs for k in r.summary["metrics"]["breakdowns"]))
    for key in keys:
        parts += [f"## accuracy by {key}", "", markdown_table(breakdown_table(runs, key)), ""]
    parts += ["## plots", ""]
    parts += [f"![{info['title']}]({info['file']})" + "\n" for info in plots.values()]
    parts += ["## runs", ""] + [f"- {label}: `{run.run_id}`" for label, run in runs] + [""]
    return "\n".join(parts)


def paired_rows(runs: Sequence[tuple[str, Run]], reference: str) -> list[dict[str, Any]]:
    """Each run against the reference spec's run of the same task, on the samples both hold."""
    from harness.results.experiment import paired_test

    by_task = {run.summary["config"]["task"]: run for _, run in runs if run.label == reference}
    if not by_task:
        raise CompareError(f"--reference {reference!r} is none of the compared runs' models: "
                           f"{', '.join(sorted({run.label for _, run in runs}))}")
    rows = []
    for label, run in runs:
        task = run.summary["config"]["task"]
        base = by_task.get(task)
        if base is None or base is run:
            continue
        cluster = run.summary["config"].get("task_spec", {}).get("metric", {}).get("cluster_key", "video_id")
        t = paired_test(run.results, base.results, cluster)
        rows.append({"task": task, "run": label, "vs": reference, "n": t.n, "difference": round(t.difference, 2),
                     "ci95": f"[{t.ci_low:.1f}, {t.ci_high:.1f}]", "wins": t.only_candidate,
                     "losses": t.only_reference, "mcnemar_p": float(f"{t.p_value:.2g}")})
    return rows


def experiment_figures(runs: Sequence[tuple[str, Run]]) -> dict[str, Any]:
    """Accuracy against visual tokens and against frames, per method, with the Pareto frontier (per task)."""
    from harness.results.experiment import curves

    out = {}
    tasks = list(dict.fromkeys(run.summary["config"]["task"] for _, run in runs))
    for task in tasks:
        mine = [(label, run.summary) for label, run in runs if run.summary["config"]["task"] == task]
        suffix = "" if len(tasks) == 1 else f"__{task}"
        for cost, xlabel in (("visual_tokens_mean", "visual tokens per sample (mean)"),
                             ("frames_used_mean", "frames reaching the model per sample (mean)")):
            points = [(label, float(s["cost"][cost]), float(s["metrics"]["accuracy"]),
                       float(s["metrics"].get("accuracy_stderr", 0.0))) for label, s in mine]
            name = "accuracy_vs_" + ("visual_tokens" if cost.startswith("visual") else "frames") + "_curves"
            out[name + suffix] = curves(points, xlabel, f"{task}: accuracy vs {xlabel.split(' per')[0]}")
    return out


def compare(run_dirs: Sequence[Path], out: Path, title: str | None = None,
            reference: str | None = None) -> dict[str, Any]:
    """Write the comparison of `run_dirs` into `out`: the per-run table and breakdowns, the specs × tasks table,
    plots (accuracy-vs-cost curves with the Pareto frontier among them) and, given a `reference` spec, paired
    tests against it; returns {"rows", "plots", "report", "runs", "title", "paired"}."""
    from harness.results.experiment import task_table
    from harness.results.plots import save

    if not run_dirs:
        raise CompareError("no run directories given")
    runs = labelled([load_run(Path(d)) for d in run_dirs])
    tasks = sorted({run.summary["config"]["task"] for _, run in runs})
    title = title or f"{', '.join(tasks)}: {' vs '.join(label for label, _ in runs)}"
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(runs)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with (out / "compare.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    plots = {name: save(fig, out / f"{name}.png")
             for name, fig in {**figures(runs), **experiment_figures(runs)}.items()}
    (out / "plots.json").write_text(json.dumps(plots, indent=2))
    _, table = task_table([run.summary for _, run in runs])
    paired = paired_rows(runs, reference) if reference else []
    for name, data in (("table.csv", table), ("paired.csv", paired)):
        if data:
            with (out / name).open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in data for k in row)))
                writer.writeheader()
                writer.writerows(data)
    report = render_report(runs, rows, plots, title, table, paired, reference)
    (out / "compare.md").write_text(report)
    return {"rows": rows, "plots": plots, "report": out / "compare.md", "runs": runs, "title": title,
            "paired": paired, "table": table}


# The W&B report's panels: (kind, title, x key, y keys), keys as the sink writes them (summary `metrics/…`, `cost/…`;
# live `samples_done`, `running_accuracy`); a test checks each key against a real run's W&B summary and history.
REPORT_PANELS: tuple[tuple[str, str, str | None, list[str]], ...] = (
    ("scatter", "accuracy vs visual tokens", "cost/visual_tokens_mean", ["metrics/accuracy"]),
    ("scatter", "peak memory vs frames", "cost/frames_used_mean", ["cost/peak_memory_mb"]),
    ("bar", "latency p50 (s)", None, ["cost/latency_p50_s"]),
    ("bar", "needle retention", None, ["cost/needle_retention"]),
    ("line", "running accuracy", "samples_done", ["running_accuracy"]),
)


def publish_wandb_report(runs: Sequence[tuple[str, Run]], title: str, local_report: Path) -> str:
    """The comparison as a W&B report (online only); returns a one-line message saying what happened."""
    if os.environ.get("WANDB_MODE", "offline") != "online":
        return (f"W&B report: offline, so the report is the local file {local_report}; upload the runs with "
                "`wandb sync <run_dir>/wandb/offline-run-*` and re-run compare with WANDB_MODE=online to publish it")
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError:
        return (f"W&B report: not published — `pip install wandb-workspaces` (the W&B Reports API) and re-run; "
                f"the local report is {local_report}")
    import wandb

    project = os.environ.get("WANDB_PROJECT", "vilamp-harness")
    entity = os.environ.get("WANDB_ENTITY") or wandb.Api().default_entity
    ids = ", ".join(repr(run.run_id) for _, run in runs)
    runset = wr.Runset(entity=entity, project=project, name="compared runs", filters=f"Config('run_id') in [{ids}]")
    kinds = {"scatter": lambda t, x, y: wr.ScatterPlot(title=t, x=x, y=y[0]),
             "bar": lambda t, x, y: wr.BarPlot(title=t, metrics=y),
             "line": lambda t, x, y: wr.LinePlot(title=t, x=x, y=y)}
    panels = [kinds[kind](title, x, y) for kind, title, x, y in REPORT_PANELS]
    report = wr.Report(entity=entity, project=project, title=title,
                       description="generated by `python -m harness compare`",
                       blocks=[wr.MarkdownBlock(text=local_report.read_text().split("## plots")[0]),
                               wr.PanelGrid(runsets=[runset], panels=panels)])
    report.save()
    return f"W&B report: {report.url}"
