"""Parity with lmms-eval 0.7.3, whose own functions run in .venv-lmms (harness/interop/lmms_oracle.py):
- our rewrites of its extractors (harness/scoring/lmms_extract.py, `extractor: lmms-eval`) read every reply of both
  corpora (tests/data/lmms_responses.json, tests/data/replies.json) as lmms-eval does, except where lmms-eval
  guesses at random (LongVideoBench, EgoSchema): there ours read none;
- our own extractor reads every corpus reply as intended, lmms-eval's fewer (the agreement table);
- our per-doc dicts (the lmms-eval layout we write) through lmms-eval's aggregators give our scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.core.records import LETTERS, SampleResult
from harness.data.tasks import get_task
from harness.interop.extractors import agreement, corpus_cases, render, run_oracle
from harness.results.lmms_layout import doc_metrics
from harness.scoring.extract import EXTRACTORS
from harness.scoring.metrics import macro_average

ROOT = Path(__file__).resolve().parents[2]
CORPUS = json.loads((ROOT / "tests" / "data" / "lmms_responses.json").read_text())
REPLIES = json.loads((ROOT / "tests" / "data" / "replies.json").read_text())
HELDOUT = json.loads((ROOT / "tests" / "data" / "replies_heldout.json").read_text())
TASKS = ("videomme", "mlvu", "longvideobench", "egoschema")
GOLD = 1  # "B": the first corpus' responses are scored against it
MLVU_DEV_TYPES = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")


def _options(task: str) -> list[str]:
    return CORPUS["options5"] if task in ("longvideobench", "egoschema") else CORPUS["options4"]


def _cases() -> list[dict]:
    return [{"task": t, "response": r, "options": _options(t), "answer": GOLD} for t in TASKS for r in CORPUS["responses"]]


def _ours(task: str, response: str) -> str:
    pred = EXTRACTORS.get(get_task(task).extractor)(response, _options(task)).answer
    return "" if pred is None else LETTERS[pred]


def _results(task: str) -> list[SampleResult]:
    """Our scored results on the corpus, as a run would journal them (breakdowns spread over real labels)."""
    out = []
    for i, response in enumerate(CORPUS["responses"]):
        letter = _ours(task, response)
        pred = None if not letter else "ABCDE".index(letter)
        breakdown = {"videomme": {"duration": ("short", "medium", "long")[i % 3], "domain": "Knowledge",
                                  "task_type": "Counting Problem"},
                     "mlvu": {"task_type": MLVU_DEV_TYPES[i % 7]},
                     "longvideobench": {"duration_group": (15, 60, 600, 3600)[i % 4], "question_category": "T3O"},
                     }.get(task, {})
        out.append(SampleResult(id=f"q{i}", task=task, model="m", status="ok" if letter else "unparsed", gold=GOLD,
                                pred=pred, correct=pred == GOLD, raw_output=response, video_id=f"v{i}",
                                breakdown=breakdown))
    return out


@pytest.fixture(scope="module")
def lmms():
    aggregate = {}
    for task in TASKS:
        key = {"videomme": "videomme_perception_score", "mlvu": "mlvu_percetion_score",
               "longvideobench": "lvb_acc", "egoschema": "score"}[task]
        meta = {"sub_category": "Humanity & History"}
        # lmms-eval's LVB aggregate compares lvb_acc letters; ours leave "" for unparsed, as its parser never does
        aggregate[task] = [doc_metrics(task, r, meta)[key] for r in _results(task)]
    # as with --limit: only 2 of MLVU-dev's 7 task types present
    aggregate["mlvu_partial"] = [d for d in aggregate["mlvu"] if d["task_type"] in MLVU_DEV_TYPES[:2]]
    out = run_oracle(_cases() + corpus_cases(REPLIES) + corpus_cases(HELDOUT), aggregate)
    a, b = len(_cases()), len(_cases()) + len(REPLIES["replies"])
    return {**out, "cases": out["cases"][:a], "replies": out["cases"][a:b], "heldout": out["cases"][b:]}


def _all_cases(lmms) -> list[tuple[dict, dict]]:
    cases = _cases() + corpus_cases(REPLIES) + corpus_cases(HELDOUT)
    return list(zip(cases, lmms["cases"] + lmms["replies"] + lmms["heldout"], strict=True))


def test_our_lmms_eval_extractors_read_every_reply_as_lmms_eval_does(lmms):
    mismatched, random_per_task = [], {t: 0 for t in TASKS}
    for case, theirs in _all_cases(lmms):
        task = get_task(case["task"])
        ours = EXTRACTORS.get(task.lmms_eval_extractor)(case["response"], case["options"]).answer
        valid = LETTERS[: len(case["options"])]
        preds = [p if p in valid else "" for p in theirs["preds"]]  # a letter past the options: none read
        if len(set(preds)) > 1:  # lmms-eval guessed (random.choice): ours reads none
            random_per_task[task.task] += 1
            expected = ""
        else:
            expected = preds[0]
        if ("" if ours is None else LETTERS[ours]) != expected:
            mismatched.append((task.task, case["response"], ours, theirs["preds"]))
    assert not mismatched, f"our lmms-eval extractors differ from lmms-eval's own: {mismatched[:10]}"
    # the random fallbacks are real, and only where lmms-eval has them
    assert random_per_task["longvideobench"] > 0 and random_per_task["egoschema"] > 0
    assert random_per_task["videomme"] == random_per_task["mlvu"] == 0


def test_ours_reads_every_corpus_reply_as_intended_and_lmms_eval_fewer(lmms):
    table = agreement(REPLIES, {"cases": lmms["replies"]})
    print("\n" + render(table))
    assert set(table) == set(TASKS)
    for task, row in table.items():
        assert row["ours"] == row["replies"], task
        assert row["lmms_expected"] < row["replies"], task


def test_scores_through_lmms_eval_aggregators_equal_ours(lmms):
    """Our per-doc dicts (the lmms-eval layout we write) fed to lmms-eval's own aggregators give our scores."""
    for task in TASKS:
        results = _results(task)
        accuracy = 100.0 * sum(r.correct for r in results) / len(results)
        theirs = lmms["aggregate"][task]
        if task == "mlvu":  # M-Avg over the 7 dev task types, percent
            groups: dict[str, dict[str, float]] = {}
            for t in MLVU_DEV_TYPES:
                group = [r for r in results if r.breakdown["task_type"] == t]
                groups[t] = {"accuracy": 100.0 * sum(r.correct for r in group) / len(group), "n": len(group)}
            assert math.isclose(theirs, macro_average(groups), abs_tol=1e-9)
        elif task == "videomme":  # percent
            assert math.isclose(theirs, accuracy, abs_tol=1e-9)
        else:  # fractions
            assert math.isclose(theirs, accuracy / 100.0, abs_tol=1e-5)


def test_mlvu_mavg_with_missing_task_types_is_a_pinned_difference(lmms):
    """lmms-eval divides M-Avg by all 7 dev task types even when --limit left some out; ours averages the
    types present (a missing type is unknown, not 0%)."""
    results = [r for r in _results("mlvu") if r.breakdown["task_type"] in MLVU_DEV_TYPES[:2]]
    groups = {}
    for t in MLVU_DEV_TYPES[:2]:
        group = [r for r in results if r.breakdown["task_type"] == t]
        groups[t] = {"accuracy": 100.0 * sum(r.correct for r in group) / len(group), "n": len(group)}
    ours = macro_average(groups)
    assert ours > 0
    assert math.isclose(lmms["aggregate"]["mlvu_partial"], ours * 2 / 7, abs_tol=1e-9)
