"""A run's results also in lmms-eval's layout, so its tooling (and anyone comparing with it) can read them.

Written into `results/<run>/lmms_eval/<model>/`: `<date_id>_results.json` (keys as lmms-eval 0.7 writes them:
results, groups, group_subtasks, configs, versions, n-shot, higher_is_better, n-samples, config, date) and
`<date_id>_samples_<task>.jsonl` (one line per doc: doc_id, target, resps, filtered_resps, plus the per-doc
metric dict its `process_results` returns). Our four benchmarks use lmms-eval's task names, metric keys and
scales (VideoMME and MLVU in percent, LongVideoBench and EgoSchema as fractions); any other task reports
`accuracy` as a fraction. Values come from our own extraction and scoring, never recomputed here.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.records import Sample, SampleResult
from harness.data.samples import LETTERS
from harness.results.summary import headline


@dataclass(frozen=True)
class LmmsTask:
    name: str  # lmms-eval task name
    metric: str  # its metric key (the filter suffix ",none" is added)
    scale: float  # 100: percent, 1: fraction — as lmms-eval reports that task


# Our task → lmms-eval's (lmms_eval/tasks/<dir>/*.yaml of 0.7.3). "mlvu_percetion_score" is misspelt upstream.
LMMS_TASKS = {
    "videomme": LmmsTask("videomme", "videomme_perception_score", 100.0),
    "videomme_w_subtitle": LmmsTask("videomme_w_subtitle", "videomme_perception_score", 100.0),
    "mlvu": LmmsTask("mlvu_dev", "mlvu_percetion_score", 100.0),
    "mlvu_test": LmmsTask("mlvu_test", "mlvu_percetion_score", 100.0),
    "longvideobench": LmmsTask("longvideobench_val_v", "lvb_acc", 1.0),
    "longvideobench_i": LmmsTask("longvideobench_val_i", "lvb_acc", 1.0),
    "egoschema": LmmsTask("egoschema_subset", "score", 1.0),
    "egoschema_full": LmmsTask("egoschema", "score", 1.0),
}


def lmms_task(task: str) -> LmmsTask:
    return LMMS_TASKS.get(task, LmmsTask(task, "accuracy", 1.0))


def _letter(index: int | None) -> str:
    return "" if index is None else LETTERS[index]


def doc_metrics(task: str, result: SampleResult, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The per-doc metric dict lmms-eval's `process_results` returns for this task, from our result
    (`meta`: the sample's kept row fields, e.g. VideoMME's sub_category)."""
    b, pred, gold = result.breakdown, _letter(result.pred), _letter(result.gold)
    score = int(result.correct)
    name = lmms_task(task).name
    if name.startswith("videomme"):
        return {"videomme_perception_score": {
            "question_id": result.id, "duration": b.get("duration", ""), "category": b.get("domain", ""),
            "sub_category": (meta or {}).get("sub_category", ""), "task_category": b.get("task_type", ""),
            "pred_answer": pred, "answer": gold, "score": score, "videoID": result.video_id}}
    if name.startswith("mlvu"):
        return {"mlvu_percetion_score": {"question_id": result.id, "task_type": b.get("task_type", ""),
                                         "pred_answer": pred, "answer": gold}}
    if name.startswith("longvideobench"):
        return {"lvb_acc": {"id": result.id, "duration_group": b.get("duration_group", ""),
                            "question_category": b.get("question_category", ""), "answer": gold,
                            "parsed_pred": pred},
                "submission": {result.id: result.raw_output}}
    if name.startswith("egoschema"):
        index = -1 if result.pred is None else result.pred  # lmms-eval maps an unknown letter to -1
        return {"submission": {result.video_id: index},
                "score": {"pred": index, "ground_truth": "" if result.gold is None else str(result.gold)}}
    return {"accuracy": score}


def _sanitize(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", model)


def write_lmms_layout(
    run_dir: Path,
    task: str,
    model: str,
    metrics: Mapping[str, Any],
    results: Sequence[SampleResult],
    samples: Sequence[Sample],
    config: dict[str, Any],
) -> tuple[Path, Path]:
    """Write both files from the run's `RunSummary.metrics`; returns (results json, samples jsonl)."""
    spec = lmms_task(task)
    out = run_dir / "lmms_eval" / _sanitize(model)
    out.mkdir(parents=True, exist_ok=True)
    date_id = time.strftime("%Y%m%d_%H%M%S")
    key = f"{spec.metric},none"
    figure = headline(metrics)
    value: Any = "N/A" if figure is None else figure * spec.scale / 100.0
    stderr = metrics.get("accuracy_stderr")
    stderr_value: Any = "N/A" if stderr is None or spec.metric == "mlvu_percetion_score" \
        else float(stderr) * spec.scale / 100.0
    order = {s.id: i for i, s in enumerate(samples)}  # doc_id: the row's position in the task's sample list
    metas = {s.id: s.meta for s in samples}
    generation = config.get("task_spec", {}).get("generation", {})
    document = {
        "results": {spec.name: {"alias": spec.name, key: value, f"{spec.metric}_stderr,none": stderr_value}},
        "groups": {},
        "group_subtasks": {spec.name: []},
        "configs": {spec.name: {"task": spec.name, "output_type": "generate_until",
                                "generation_kwargs": {**generation, "do_sample": False, "temperature": 0},
                                "metadata": {"version": config.get("task_version")}}},
        "versions": {spec.name: config.get("task_version")},
        "n-shot": {spec.name: 0},
        "higher_is_better": {spec.name: {spec.metric: True}},
        "n-samples": {spec.name: {"original": len(samples), "effective": len(results)}},
        "config": {"model": "vilamp_harness", "model_args": f"spec={model}", "batch_size": 1,
                   "limit": config.get("limit"), "gen_kwargs": generation},
        "date": time.time(),
        "harness": {"run_id": config.get("run_id"), "task": task, "prompt_profile": config.get("prompt_profile"),
                    "extractor": config.get("extractor"), "breakdowns": metrics.get("breakdowns", {})},
    }
    results_path = out / f"{date_id}_results.json"
    results_path.write_text(json.dumps(document, indent=2, default=str))
    samples_path = out / f"{date_id}_samples_{spec.name}.jsonl"
    with samples_path.open("w", encoding="utf-8") as handle:
        for result in sorted(results, key=lambda r: order.get(r.id, len(order))):
            line = {"doc_id": order.get(result.id, -1), "id": result.id, "target": _letter(result.gold),
                    "resps": [[result.raw_output]], "filtered_resps": [result.raw_output],
                    "status": result.status, **doc_metrics(task, result, metas.get(result.id))}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return results_path, samples_path
