"""One evaluation run: task → samples → Ray runner → journal → summary tables → W&B."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.journal import Journal
from harness.paths import results_dir
from harness.records import SampleResult
from harness.report import build_summary, write_summary
from harness.runner import RunnerConfig, run_samples
from harness.samples import load_samples, resolve_root
from harness.specs import MODELS
from harness.tasks import get_task


@dataclass(frozen=True)
class EvalRequest:
    task: str
    model: str
    limit: int | None = None
    prompt: str | None = None  # prompt profile; the task's default when None
    data_root: str | None = None
    out: str | None = None  # results root (default results/)
    wandb: bool = True
    runner: RunnerConfig = RunnerConfig()


@dataclass(frozen=True)
class EvalOutcome:
    run_dir: Path
    summary: dict[str, Any]
    results: list[SampleResult]
    wandb_dir: str | None


def run_config(request: EvalRequest) -> dict[str, Any]:
    """The resolved configuration that identifies a run (its hash names the run)."""
    task = get_task(request.task)
    spec = MODELS.get(request.model)
    return {
        "task": task.task,
        "task_version": task.version,
        "task_spec": dataclasses.asdict(task),
        "model": spec.name,
        "model_spec": dataclasses.asdict(spec),
        "prompt_profile": request.prompt or task.default_prompt,
        "extractor": task.extractor,
        "data_root": str(resolve_root(task, request.data_root)),
        "limit": request.limit,
        "runner": dataclasses.asdict(request.runner),
    }


def config_hash(config: dict[str, Any]) -> str:
    stable = {k: v for k, v in config.items() if k not in ("runner",)}  # workers do not change answers
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:10]


def evaluate(request: EvalRequest) -> EvalOutcome:
    task = get_task(request.task)
    spec = MODELS.get(request.model)
    config = run_config(request)
    run_id = f"{task.task}__{spec.name}__{time.strftime('%Y%m%d-%H%M%S')}__{config_hash(config)}"
    run_dir = Path(request.out or results_dir()) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    config["run_id"] = run_id
    (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))

    samples = load_samples(task, request.data_root, request.limit)
    sink = None
    if request.wandb:
        from harness.wandb_sink import WandbSink

        sink = WandbSink(run_dir, run_id, config)
    journal = Journal(run_dir / "samples.jsonl")
    results: list[SampleResult] = []
    bar = tqdm(total=len(samples), desc=f"{task.task} × {spec.name}", unit="sample", dynamic_ncols=True)

    def on_result(result: SampleResult) -> None:
        journal.append(result)
        results.append(result)
        if sink is not None:
            sink.log_sample(result)
        bar.update(1)
        bar.set_postfix(acc=f"{100.0 * sum(r.correct for r in results) / len(results):.1f}%",
                        fail=sum(r.status not in ("ok", "unparsed") for r in results))

    start = time.perf_counter()
    try:
        run_samples(samples, spec, task, request.prompt, request.runner, on_result)
    finally:
        bar.close()
        journal.close()
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r.id)
    summary = build_summary(results, task.metric.breakdown, wall, config)
    write_summary(run_dir, summary)
    wandb_dir = None
    if sink is not None:
        wandb_dir = sink.run_path
        sink.finish(summary, results)
    return EvalOutcome(run_dir, summary, results, wandb_dir)
