"""Parity with lmms-eval 0.7.3: on a corpus of realistic model responses for our four benchmarks, our answer
extraction and scores equal lmms-eval's own functions (run in .venv-lmms by tests/lmms_oracle.py), except the
deliberate differences pinned in DELIBERATE (each documented in README "lmms-eval interop")."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from harness.core.records import SampleResult
from harness.data.tasks import get_task
from harness.results.lmms_layout import doc_metrics
from harness.scoring.extract import EXTRACTORS
from harness.scoring.metrics import macro_average

ROOT = Path(__file__).resolve().parents[2]
LMMS_PYTHON = ROOT / ".venv-lmms" / "bin" / "python"
CORPUS = json.loads((ROOT / "tests" / "data" / "lmms_responses.json").read_text())
TASKS = ("videomme", "mlvu", "longvideobench", "egoschema")
GOLD = 1  # "B": the corpus' responses are scored against it
RANDOM = "random"  # lmms-eval's parser falls back to random.choice: several letters across seeds

_LVB_ANSWER_BUG = "LVB parser takes the first capital A-E anywhere: the 'A' of 'Answer:' (its prefix list lacks it)"
_NO_TEXT = "lmms-eval's extract_mcq_answer reads letters only; we also accept the text of exactly one option"
_LVB_RANDOM = "LVB: no letter (or >10 words without one) → random letter; ours: unparsed, scored wrong"
_EGO_RANDOM = "EgoSchema (MMMU parser): only '(X)', 'X ', 'X.' count, else option text if >5 words, else random"
_EGO_LAST = "EgoSchema: several candidates → the one whose LAST occurrence is earliest; ours: the first letter"
# (task, response) → (our letter, lmms-eval's letter or RANDOM, why). Everything else must agree exactly.
DELIBERATE: dict[tuple[str, str], tuple[str, str, str]] = {
    ("videomme", "He is riding a bicycle."): ("B", "", _NO_TEXT),
    ("mlvu", "He is riding a bicycle."): ("B", "", _NO_TEXT),
    ("longvideobench", "Answer: B"): ("B", "A", _LVB_ANSWER_BUG),
    ("longvideobench", "Answer: B. He is riding a bicycle"): ("B", "A", _LVB_ANSWER_BUG),
    ("longvideobench", "b"): ("", RANDOM, _LVB_RANDOM),
    ("longvideobench", "He is riding a bicycle."): ("B", RANDOM, _LVB_RANDOM),
    ("longvideobench", "The man in the video is riding a bicycle along a path next to the river at sunset."):
        ("", RANDOM, _LVB_RANDOM),
    ("longvideobench", "I cannot determine the answer from the video."): ("", RANDOM, _LVB_RANDOM),
    ("longvideobench", ""): ("", RANDOM, _LVB_RANDOM),
    ("egoschema", "C)"): ("C", RANDOM, _EGO_RANDOM),
    ("egoschema", "D: He is playing the piano"): ("D", RANDOM, _EGO_RANDOM),
    ("egoschema", "[B]"): ("B", RANDOM, _EGO_RANDOM),
    ("egoschema", "**B**"): ("B", RANDOM, _EGO_RANDOM),
    ("egoschema", "b"): ("", RANDOM, _EGO_RANDOM),
    ("egoschema", "He is riding a bicycle."): ("B", RANDOM, _EGO_RANDOM),
    ("egoschema", "The man in the video is riding a bicycle along a path next to the river at sunset."):
        ("", RANDOM, _EGO_RANDOM),
    ("egoschema", "I cannot determine the answer from the video."): ("", RANDOM, _EGO_RANDOM),
    ("egoschema", ""): ("", RANDOM, _EGO_RANDOM),
    ("egoschema", "A, B"): ("A", "B", _EGO_LAST),
}
MLVU_DEV_TYPES = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")


def _options(task: str) -> list[str]:
    return CORPUS["options5"] if task in ("longvideobench", "egoschema") else CORPUS["options4"]


def _cases() -> list[dict]:
    return [{"task": t, "response": r, "options": _options(t), "answer": GOLD} for t in TASKS for r in CORPUS["responses"]]


def _ours(task: str, response: str) -> str:
    pred = EXTRACTORS.get(get_task(task).extractor)(response, _options(task)).answer
    return "" if pred is None else "ABCDE"[pred]


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
    if not LMMS_PYTHON.exists():
        pytest.fail(f"{LMMS_PYTHON} missing: create it with `make lmms-venv` (make test does this first)")
    aggregate = {}
    for task in TASKS:
        key = {"videomme": "videomme_perception_score", "mlvu": "mlvu_percetion_score",
               "longvideobench": "lvb_acc", "egoschema": "score"}[task]
        meta = {"sub_category": "Humanity & History"}
        # lmms-eval's LVB aggregate compares lvb_acc letters; ours leave "" for unparsed, as its parser never does
        aggregate[task] = [doc_metrics(task, r, meta)[key] for r in _results(task)]
    # as with --limit: only 2 of MLVU-dev's 7 task types present
    aggregate["mlvu_partial"] = [d for d in aggregate["mlvu"] if d["task_type"] in MLVU_DEV_TYPES[:2]]
    request = {"seeds": 8, "cases": _cases(), "aggregate": aggregate}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([str(LMMS_PYTHON), str(ROOT / "tests" / "lmms_oracle.py")], input=json.dumps(request),
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_extraction_matches_lmms_eval_except_the_pinned_differences(lmms):
    mismatched = []
    for case, theirs in zip(_cases(), lmms["cases"], strict=True):
        key = (case["task"], case["response"])
        ours = _ours(*key)
        observed = RANDOM if len(theirs["preds"]) > 1 else theirs["preds"][0]
        if key in DELIBERATE:
            want_ours, want_theirs, _why = DELIBERATE[key]
            assert (ours, observed) == (want_ours, want_theirs), f"pinned difference changed: {key}"
        elif (ours, observed) != (observed, observed):
            mismatched.append((key, ours, observed))
        else:  # agreeing letters also agree on the 0/1 score
            assert theirs["score"] == int(ours == "B"), key
    assert not mismatched, f"undocumented differences from lmms-eval: {mismatched}"


def test_corpus_covers_every_task_and_both_kinds_of_case(lmms):
    agreeing = {t: 0 for t in TASKS}
    for case in _cases():
        agreeing[case["task"]] += (case["task"], case["response"]) not in DELIBERATE
    assert min(agreeing.values()) >= 20  # most realistic responses parse identically
    assert {t for t, _ in DELIBERATE} == set(TASKS)  # every difference found is pinned per task


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
