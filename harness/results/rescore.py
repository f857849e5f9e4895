"""Scores for outputs the harness did not produce, and new scores for runs it did, without running a model.

`score_predictions`: an external predictions file (JSONL of `{"id", "response"}`; also lmms-eval's
`samples_<task>.jsonl` and our own `samples.jsonl`) against the task's annotations, through the task's extractor,
metric, breakdowns and clustered standard error, written as a run writes them (`samples.jsonl`, `summary.*`).
`rescore`: a finished run's raw outputs re-extracted with the current (or a named) extractor into a new summary.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.config import ConfigError
from harness.core.paths import results_dir
from harness.core.records import Sample, SampleResult
from harness.core.status import ANSWERED
from harness.data.samples import load_samples, resolve_root
from harness.data.tasks import TaskSpec, get_task
from harness.results.summary import RunSummary, build_summary, write_summary
from harness.run.journal import Journal, read_journal
from harness.run.pipeline import failure
from harness.scoring.extract import extractor_name
from harness.scoring.scorer import TaskScorer


@dataclasses.dataclass(frozen=True)
class Reply:
    """One prediction line: the model's text, or (our own journal) the failure status it ended with."""

    response: str
    status: str = "ok"
    error: str = ""


def _response(line: Mapping[str, Any]) -> str | None:
    """The reply text of a predictions line in any accepted layout (None when it has none)."""
    for key in ("response", "raw_output"):
        if isinstance(line.get(key), str):
            return line[key]
    filtered = line.get("filtered_resps", line.get("resps"))  # lmms-eval: a string, [text] or [[text]]
    while isinstance(filtered, list) and filtered:
        filtered = filtered[0]
    return filtered if isinstance(filtered, str) else None


def _line_id(line: Mapping[str, Any], task: TaskSpec, samples: Sequence[Sample]) -> str | None:
    """Our id: `id`, the task's id field of lmms-eval's logged `doc`, or lmms-eval's `doc_id` (row position)."""
    if "id" in line:
        return str(line["id"])
    doc = line.get("doc")
    if isinstance(doc, Mapping) and task.fields.id in doc:
        return str(doc[task.fields.id])
    if isinstance(line.get("doc_id"), int) and 0 <= line["doc_id"] < len(samples):
        return samples[line["doc_id"]].id
    return None


def read_predictions(path: Path, task: TaskSpec, samples: Sequence[Sample]) -> dict[str, Reply]:
    """Predictions by sample id; every malformed line, duplicate id or id the annotations lack is a ConfigError
    naming the file and line."""
    if not path.is_file():
        raise ConfigError(f"--predictions {path}: no such file")
    known = {s.id for s in samples}
    replies: dict[str, Reply] = {}
    first_line: dict[str, int] = {}
    unknown: list[str] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            line = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: not JSON ({exc.msg}); expected one {{\"id\", \"response\"}} object per line")
        if not isinstance(line, dict):
            raise ConfigError(f"{where}: expected a JSON object with \"id\" and \"response\"")
        sample_id, response = _line_id(line, task, samples), _response(line)
        if sample_id is None or response is None:
            raise ConfigError(f"{where}: needs an \"id\" (or lmms-eval's doc / doc_id) and a \"response\" "
                              "(or raw_output / filtered_resps); found keys " + ", ".join(sorted(line)))
        if sample_id in first_line:
            raise ConfigError(f"{where}: id {sample_id!r} already predicted on line {first_line[sample_id]}")
        if sample_id not in known:
            unknown.append(sample_id)
            continue
        first_line[sample_id] = number
        status = line.get("status", "ok")
        if status in ANSWERED:
            replies[sample_id] = Reply(response)
        else:  # our journal's failed sample: it never produced an answer
            replies[sample_id] = Reply(response, str(status), str(line.get("error", "")))
    if unknown:
        raise ConfigError(f"{path}: {len(unknown)} ids are not in the task {task.task}'s annotations (e.g. "
                          f"{', '.join(map(repr, unknown[:3]))}); pass the annotations they belong to with "
                          "--annotations, or the right --task")
    return replies


def scored(sample: Sample, reply: Reply | None, scorer: TaskScorer, model: str) -> SampleResult:
    if reply is None:
        return failure(sample, model, "missing", "no prediction for this id")
    if reply.status not in ANSWERED:
        return failure(sample, model, reply.status, reply.error, raw_output=reply.response)  # type: ignore[arg-type]
    score = scorer.score(sample, reply.response)
    return SampleResult(id=sample.id, task=sample.task, model=model, status=score.status, gold=sample.answer,
                        pred=score.prediction.answer, correct=score.correct, raw_output=reply.response,
                        video_id=sample.video_id, breakdown=sample.breakdown)


def _write(out: Path, results: list[SampleResult], task: TaskSpec, config: dict[str, Any], wall_s: float,
           timed: Sequence[SampleResult] | None = None) -> RunSummary:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    samples_path = out / "samples.jsonl"
    samples_path.unlink(missing_ok=True)  # rewritten whole: a scoring is cheap to repeat
    journal = Journal(samples_path)
    for result in results:
        journal.append(result)
    journal.close()
    summary = build_summary(results, task.metric, wall_s, config, timed=timed)
    write_summary(out, summary)
    return summary


def score_predictions(task_name: str, predictions: Path, *, annotations: str | None = None,
                      data_root: str | None = None, out: str | None = None, extractor: str | None = None,
                      model: str | None = None) -> tuple[Path, RunSummary]:
    """Score `predictions` against the task's annotations; returns the output directory and its summary."""
    task = get_task(task_name)
    task = dataclasses.replace(task, extractor=extractor_name(task, extractor))
    samples = load_samples(task, data_root, annotations=annotations)
    replies = read_predictions(Path(predictions), task, samples)
    model = model or Path(predictions).stem
    scorer = TaskScorer(task)
    results = sorted((scored(s, replies.get(s.id), scorer, model) for s in samples), key=lambda r: r.id)
    config = {"task": task.task, "task_version": task.version, "task_spec": dataclasses.asdict(task), "model": model,
              "model_spec": {}, "prompt_profile": None, "extractor": task.extractor,
              "data_root": str(resolve_root(task, data_root)), "limit": None,
              "predictions": str(Path(predictions).resolve()),
              "annotations": str(Path(annotations).expanduser().resolve()) if annotations else None}
    run_id = f"{task.task}__score-{model}__{time.strftime('%Y%m%d-%H%M%S')}"
    config["run_id"] = run_id
    out_dir = Path(out) if out else results_dir() / run_id
    return out_dir, _write(out_dir, results, task, config, wall_s=0.0)


def rescore(run_dir: Path, extractor: str | None = None, out: str | None = None) -> tuple[Path, RunSummary]:
    """Re-extract `run_dir`'s raw outputs (the samples the model answered; failures stay as they were) with
    `extractor` (default: the task's current one) into `out` (default RUN_DIR/rescore__<extractor>)."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{run_dir}: no readable config.json ({exc}); pass a results/<run_id> directory") from exc
    task = get_task(config["task"])
    task = dataclasses.replace(task, extractor=extractor_name(task, extractor))
    samples = {s.id: s for s in load_samples(task, config.get("data_root"), config.get("limit"),
                                             annotations=config.get("annotations"))}  # what a `score` read
    scorer = TaskScorer(task, config.get("prompt_profile"))
    results = []
    for result in read_journal(run_dir / "samples.jsonl"):
        if result.status not in ANSWERED:
            results.append(result)
            continue
        if result.id not in samples:
            raise ConfigError(f"{run_dir}: sample {result.id!r} is not in the task {task.task}'s data any more; "
                              "rescore needs the annotations the run read")
        score = scorer.score(samples[result.id], result.raw_output)
        results.append(dataclasses.replace(result, status=score.status, pred=score.prediction.answer,
                                           correct=score.correct))
    if not results:
        raise ConfigError(f"{run_dir}: samples.jsonl holds no results to rescore")
    results.sort(key=lambda r: r.id)
    previous = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    wall_s = float(previous.get("cost", {}).get("wall_s", 0.0))
    source = config.get("run_id", run_dir.name)
    config = {**config, "extractor": task.extractor, "task_spec": dataclasses.asdict(task), "rescored_from": source,
              "run_id": f"{source}__rescore-{task.extractor}"}
    out_dir = Path(out) if out else run_dir / f"rescore__{task.extractor}"
    return out_dir, _write(out_dir, results, task, config, wall_s)
