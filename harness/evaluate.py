"""One evaluation run: task → samples → Ray runner → journal → summary tables → W&B."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.core.config import ConfigError
from harness.core.paths import results_dir
from harness.core.records import Sample, SampleResult
from harness.core.status import ANSWERED
from harness.data.samples import load_samples, resolve_root
from harness.data.tasks import TaskSpec, get_task
from harness.model.overrides import apply_overrides
from harness.model.preflight import check_spec
from harness.model.specs import MODELS, ModelSpec
from harness.results.lmms_layout import write_lmms_layout
from harness.results.summary import RunSummary, build_summary, provenance, write_summary
from harness.run.interrupt import interrupted_in
from harness.run.journal import Journal, finished
from harness.run.runner import Runner, RunnerConfig
from harness.scoring.extract import extractor_name
from harness.scoring.metrics import submission


@dataclass(frozen=True)
class EvalRequest:
    task: str
    model: str
    limit: int | None = None
    prompt: str | None = None  # prompt profile; the task's default when None
    extractor: str | None = None  # answer extractor ("lmms-eval": the task's parity one); the task's when None
    video_backend: str | None = None  # auto | decord | pyav; the task's when None
    overrides: tuple[str, ...] = ()  # `--set component.key=value`: the spec's arguments changed (model/overrides.py)
    data_root: str | None = None
    out: str | None = None  # results root (default results/)
    wandb: bool = True
    group: str | None = None  # W&B group shared by the runs of one comparison (default: the task)
    runner: RunnerConfig = RunnerConfig()
    resume: str | None = None  # a run directory: skip the samples its journal holds (same config hash only)


@dataclass(frozen=True)
class EvalOutcome:
    run_dir: Path
    summary: RunSummary
    results: list[SampleResult]
    wandb_dir: str | None


@dataclass(frozen=True, eq=False)
class ResolvedRun:
    """A request with every name looked up and checked: what both the CLI's fail-fast and `evaluate` use."""

    task: TaskSpec
    spec: ModelSpec
    config: dict[str, Any]
    samples: list[Sample]


def resolve(request: EvalRequest) -> ResolvedRun:
    """Look up and check everything a run needs, before any worker starts or run directory exists: task, model
    spec (arguments, hooks, checkpoint: harness.model.preflight), prompt profile, data (generated if it can be).
    Every problem is one ConfigError / UnknownNameError line."""
    task = get_task(request.task)
    task = dataclasses.replace(task, extractor=extractor_name(task, request.extractor),  # the run's, resolved
                               video_backend=request.video_backend or task.video_backend)
    spec = apply_overrides(MODELS.get(request.model), request.overrides)
    task.prompt(request.prompt)  # an unknown profile names the valid ones
    check_spec(spec)
    samples = load_samples(task, request.data_root, request.limit)
    return ResolvedRun(task, spec, run_config(request, task, spec), samples)


def run_config(request: EvalRequest, task: TaskSpec, spec: ModelSpec) -> dict[str, Any]:
    """The resolved configuration that identifies a run (its hash names the run)."""
    return {
        "task": task.task,
        "task_version": task.version,
        "task_spec": dataclasses.asdict(task),
        "model": spec.name,
        "model_spec": dataclasses.asdict(spec),  # the effective spec, overrides applied
        "overrides": list(request.overrides),
        "prompt_profile": request.prompt or task.default_prompt,
        "extractor": task.extractor,
        "data_root": str(resolve_root(task, request.data_root)),
        "limit": request.limit,
        "runner": dataclasses.asdict(request.runner),
    }


def config_hash(config: dict[str, Any]) -> str:
    # Workers do not change answers; run_id is added after hashing (config.json holds it).
    stable = {k: v for k, v in config.items() if k not in ("runner", "run_id")}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:10]


def resumable(run_dir: Path, config: dict[str, Any]) -> str:
    """The run id of `run_dir` when it was started with this config; else a ConfigError saying what differs."""
    path = run_dir / "config.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume {run_dir}: cannot read {path} ({exc}); pass a results/<run_id> directory") from exc
    if config_hash(stored) != config_hash(config):
        differ = sorted(k for k in set(stored) | set(config) if k not in ("runner", "run_id")
                        and json.dumps(stored.get(k), sort_keys=True, default=str)
                        != json.dumps(config.get(k), sort_keys=True, default=str))
        raise ConfigError(f"--resume {run_dir}: config hash {config_hash(stored)} ≠ this run's {config_hash(config)} "
                          f"(differs in: {', '.join(differ)}); resume with the same settings or start a new run")
    return str(stored["run_id"])


def evaluate(request: EvalRequest, resolved: ResolvedRun | None = None) -> EvalOutcome:
    """Run `request` (`resolved`: its resolution, when the caller already made it)."""
    resolved = resolved or resolve(request)
    task, spec, samples = resolved.task, resolved.spec, resolved.samples
    config = dict(resolved.config)
    if request.resume:
        run_dir = Path(request.resume)
        run_id = resumable(run_dir, config)
        config["run_id"] = run_id
    else:
        run_id = f"{task.task}__{spec.name}__{time.strftime('%Y%m%d-%H%M%S')}__{config_hash(config)}"
        run_dir = Path(request.out or results_dir()) / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        config["run_id"] = run_id
        (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
    done = finished(run_dir / "samples.jsonl") if request.resume else {}
    if done:
        print(f"resuming {run_id}: {len(done)} of {len(samples)} samples already in the journal", file=sys.stderr)
    todo = [s for s in samples if s.id not in done]

    origin = provenance(config)  # git and package versions, protocol code: once per run
    sink = None
    if request.wandb:
        from harness.results.wandb_sink import WandbSink

        sink = WandbSink(run_dir, run_id, config, group=request.group, origin=origin)
    journal = Journal(run_dir / "samples.jsonl")
    earlier: list[SampleResult] = [done[s.id] for s in samples if s.id in done]
    ran: list[SampleResult] = []  # this session's
    correct = sum(r.correct for r in earlier)
    failed = sum(r.status not in ANSWERED for r in earlier)
    bar = tqdm(total=len(samples), initial=len(earlier), desc=f"{task.task} × {spec.name}", unit="sample",
               dynamic_ncols=True)

    def on_result(result: SampleResult) -> None:
        nonlocal correct, failed
        result = dataclasses.replace(result, prompt_profile=config["prompt_profile"])  # every journal line names it
        journal.append(result)
        ran.append(result)
        if sink is not None:
            sink.log_sample(result)
        correct += result.correct
        failed += result.status not in ANSWERED
        bar.update(1)
        bar.set_postfix(acc=f"{100.0 * correct / (len(earlier) + len(ran)):.1f}%", fail=failed)

    start = time.perf_counter()
    try:  # SIGINT or SIGTERM (harness.run.interrupt), also while the summary is written: say which run to resume
        try:
            stats = Runner(todo, spec, task, request.prompt, request.runner, on_result).run()
        finally:
            bar.close()
            journal.close()
        wall = time.perf_counter() - start
        results = sorted(earlier + ran, key=lambda r: r.id)
        submission_file = None
        if task.metric.submission:  # unlabelled benchmark split: predictions for the authors' server, no score
            submission_file = "submission.json"
            (run_dir / submission_file).write_text(json.dumps(submission(results, task.metric.submission), indent=1))
        summary = build_summary(results, task.metric, wall, config, timed=ran, stats=stats, origin=origin,
                                submission_file=submission_file)
        write_summary(run_dir, summary)
        write_lmms_layout(run_dir, task.task, spec.name, summary.metrics, results, samples, config)
        wandb_dir = None
        if sink is not None:
            wandb_dir = sink.run_path
            sink.finish(summary, results, videos={s.id: s.video for s in samples})
    except KeyboardInterrupt as exc:
        raise interrupted_in(run_dir, exc) from exc
    return EvalOutcome(run_dir, summary, results, wandb_dir)
