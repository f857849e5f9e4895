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
from harness.data.tasks import TaskSpec, discover_suites, get_task, task_names
from harness.model.overrides import apply_overrides
from harness.model.preflight import check_spec
from harness.model.specs import MODELS, ModelSpec
from harness.results.lmms_layout import write_lmms_layout
from harness.results.suite import SUITE_FILE, write_suite_table
from harness.results.summary import RunSummary, build_summary, provenance, write_summary
from harness.run.config import RunnerConfig
from harness.run.interrupt import interrupted_in
from harness.run.journal import Journal, finished
from harness.run.raycluster import join_cluster
from harness.run.runner import Runner, decoder_count
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
    run_name: str | None = None  # the new run directory's name under `out` (default: task, spec, time and hash)


@dataclass(frozen=True)
class EvalOutcome:
    run_dir: Path
    summary: RunSummary
    results: list[SampleResult]
    wandb_dir: str | None


@dataclass(frozen=True)
class SuiteOutcome:
    suite_dir: Path | None  # None: a single task's run
    outcomes: list[EvalOutcome]  # one per task, in the suite's order
    table: Path | None  # suite.md


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


def suite_name(selection: str) -> str | None:
    """The suite `--task` names ("a,b" is an ad-hoc suite named "a+b"), or None for a single task."""
    if "," in selection:
        return "+".join(p.strip() for p in selection.split(","))
    return selection if selection in discover_suites() else None


def resolve_all(request: EvalRequest) -> list[ResolvedRun]:
    """`resolve` for every task `request.task` names (a task, a suite, or a comma-separated list)."""
    return [resolve(dataclasses.replace(request, task=name)) for name in task_names(request.task)]


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


@dataclass(eq=False)
class _TaskRun:
    """One task's part of a run: its directory, journal, and the results from earlier sessions and this one."""

    resolved: ResolvedRun
    run_dir: Path
    config: dict[str, Any]
    earlier: list[SampleResult]
    journal: Journal | None = None
    sink: Any = None
    ran: list[SampleResult] = dataclasses.field(default_factory=list)


def _open_runs(request: EvalRequest, runs: list[ResolvedRun], suite: str | None) -> tuple[Path | None, list[_TaskRun]]:
    """The run directories (new, or the resumed ones: same config hash only), each config.json written."""
    spec = runs[0].spec
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suite_dir, resumed = None, {}
    if suite is not None:
        if request.resume:
            suite_dir = Path(request.resume)
            try:
                resumed = json.loads((suite_dir / SUITE_FILE).read_text())["runs"]
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"--resume {suite_dir}: no readable {SUITE_FILE} ({exc}); pass the suite's "
                                  "directory") from exc
        else:
            key = hashlib.sha256("".join(config_hash(r.config) for r in runs).encode()).hexdigest()[:10]
            suite_dir = Path(request.out or results_dir()) / f"{suite}__{spec.name}__{stamp}__{key}"
            suite_dir.mkdir(parents=True, exist_ok=False)
    opened = []
    for run in runs:
        config = dict(run.config)
        if suite_dir is not None and request.resume:
            if run.task.task not in resumed:
                raise ConfigError(f"--resume {suite_dir}: task {run.task.task!r} is not in this suite "
                                  f"({', '.join(resumed)})")
            run_dir = suite_dir / resumed[run.task.task]
        elif request.resume:
            run_dir = Path(request.resume)
        else:
            name = f"{run.task.task}__{spec.name}__{config_hash(config)}" if suite_dir is not None else \
                request.run_name or f"{run.task.task}__{spec.name}__{stamp}__{config_hash(config)}"
            run_dir = (suite_dir or Path(request.out or results_dir())) / name
            run_dir.mkdir(parents=True, exist_ok=False)
        if request.resume:
            config["run_id"] = resumable(run_dir, config)
        else:
            config["run_id"] = run_dir.name
            (run_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
        done = finished(run_dir / "samples.jsonl") if request.resume else {}
        opened.append(_TaskRun(run, run_dir, config, [done[s.id] for s in run.samples if s.id in done]))
    if suite_dir is not None and not request.resume:
        (suite_dir / SUITE_FILE).write_text(json.dumps(
            {"suite": suite, "model": spec.name, "tasks": [r.resolved.task.task for r in opened],
             "runs": {r.resolved.task.task: r.run_dir.name for r in opened}}, indent=2) + "\n")
    return suite_dir, opened


def evaluate(request: EvalRequest, resolved: ResolvedRun | list[ResolvedRun] | None = None) -> EvalOutcome:
    """Run `request` (`resolved`: its resolution, when the caller already made it): one task, or a suite of tasks
    in one queue (`run_suite`)."""
    runs = resolved if isinstance(resolved, list) else [resolved or resolve(request)]
    return _run(request, runs, None).outcomes[0]


def run_suite(request: EvalRequest, resolved: list[ResolvedRun] | None = None) -> SuiteOutcome:
    """The tasks `request.task` names (a suite or a comma-separated list) for one spec: one Ray cluster and one
    queue across the tasks (harness.run.calls.run_order over all of them), one run directory per task inside the
    suite's (each its own journal, summary and config hash), and the suite table (suite.md / .csv / .json)."""
    runs = resolved or resolve_all(request)
    return _run(request, runs, suite_name(request.task))


def _run(request: EvalRequest, runs: list[ResolvedRun], suite: str | None) -> SuiteOutcome:
    spec = runs[0].spec
    join_cluster(request.runner, decoder_count(request.runner, spec))  # a cluster that cannot serve: before any run dir
    suite_dir, parts = _open_runs(request, runs, suite)
    by_task = {p.resolved.task.task: p for p in parts}
    finished_ids = {p.resolved.task.task: {r.id for r in p.earlier} for p in parts}
    todo = [s for p in parts for s in p.resolved.samples if s.id not in finished_ids[p.resolved.task.task]]
    earlier = sum(len(p.earlier) for p in parts)
    total = sum(len(p.resolved.samples) for p in parts)
    if earlier:
        print(f"resuming: {earlier} of {total} samples already in the journals", file=sys.stderr)
    origin = provenance(parts[0].config)
    for part in parts:
        part.journal = Journal(part.run_dir / "samples.jsonl")
        if request.wandb:
            from harness.results.wandb_sink import WandbSink

            part.sink = WandbSink(part.run_dir, part.config["run_id"], part.config,
                                  group=request.group or (suite_dir.name if suite_dir else None), origin=origin)
    correct = sum(r.correct for p in parts for r in p.earlier)
    failed = sum(r.status not in ANSWERED for p in parts for r in p.earlier)
    label = suite or runs[0].task.task
    bar = tqdm(total=total, initial=earlier, desc=f"{label} × {spec.name}", unit="sample", dynamic_ncols=True)

    def on_result(result: SampleResult) -> None:
        nonlocal correct, failed
        part = by_task[result.task]
        result = dataclasses.replace(result, prompt_profile=part.config["prompt_profile"])  # every line names it
        part.journal.append(result)
        part.ran.append(result)
        if part.sink is not None:
            part.sink.log_sample(result)
        correct += result.correct
        failed += result.status not in ANSWERED
        bar.update(1)
        bar.set_postfix(acc=f"{100.0 * correct / bar.n:.1f}%", fail=failed)

    start = time.perf_counter()
    where = suite_dir or parts[0].run_dir
    try:  # SIGINT or SIGTERM (harness.run.interrupt), also while the summaries are written: say what to resume
        try:
            stats = Runner(todo, spec, [p.resolved.task for p in parts], request.prompt, request.runner,
                           on_result).run()
        finally:
            bar.close()
            for part in parts:
                part.journal.close()
        wall = time.perf_counter() - start
        busy = {p.resolved.task.task: sum(r.timings_s.get("total", 0.0) for r in p.ran) for p in parts}
        outcomes = []
        for part in parts:  # a suite's tasks share the wall clock: each is charged its share of the busy time
            share = busy[part.resolved.task.task] / sum(busy.values()) if sum(busy.values()) > 0 else 1 / len(parts)
            outcomes.append(_finish(part, wall * share, stats if suite is None else None, origin))
        table = write_suite_table(suite_dir, spec.name, outcomes, stats) if suite_dir is not None else None
    except KeyboardInterrupt as exc:
        raise interrupted_in(where, exc) from exc
    return SuiteOutcome(suite_dir, outcomes, table)


def _finish(part: _TaskRun, wall: float, stats: Any, origin: dict[str, Any]) -> EvalOutcome:
    """One task's summary, submission file, lmms-eval layout and W&B run."""
    task, spec, samples = part.resolved.task, part.resolved.spec, part.resolved.samples
    results = sorted(part.earlier + part.ran, key=lambda r: r.id)
    submission_file = None
    if task.metric.submission:  # unlabelled benchmark split: predictions for the authors' server, no score
        submission_file = "submission.json"
        (part.run_dir / submission_file).write_text(json.dumps(submission(results, task.metric.submission), indent=1))
    summary = build_summary(results, task.metric, wall, part.config, timed=part.ran, stats=stats, origin=origin,
                            submission_file=submission_file)
    write_summary(part.run_dir, summary)
    write_lmms_layout(part.run_dir, task.task, spec.name, summary.metrics, results, samples, part.config)
    wandb_dir = None
    if part.sink is not None:
        wandb_dir = part.sink.run_path
        part.sink.finish(summary, results, videos={s.id: s.video for s in samples})
    return EvalOutcome(part.run_dir, summary, results, wandb_dir)
