"""P7 (harness/bench/lmms_speed.py): the agreement count, the two task definitions over the same docs, and a small
real run of both tools (3 docs, 1 worker each)."""

import importlib.util
import json
from pathlib import Path

import pytest

from harness.bench.lmms_speed import LMMS_BIN, TASK, ToolRun, agreement, first_text, main, pick_docs, write_workload


def run(tool: str, texts: dict[str, str], frames: dict[str, list[int]]) -> ToolRun:
    return ToolRun(tool, 1.0, 0.5, texts, frames, 0.5, {})


def test_agreement_compares_stripped_texts_and_counts_a_missing_reply_as_different():
    docs = ({"id": "a"}, {"id": "b"}, {"id": "c"})
    ours = run("ours", {"a": " A", "b": "B", "c": "C"}, {"a": [0, 9], "b": [0, 9], "c": [0, 9]})
    lmms = run("lmms-eval", {"a": "A", "b": "C"}, {"a": [0, 9], "b": [0, 8], "c": [0, 9]})
    out = agreement(docs, ours, lmms)
    assert [(p["id"], p["identical"], p["same_frames"]) for p in out["pairs"]] == [
        ("a", True, True), ("b", False, False), ("c", False, True)]
    assert out["identical"] == 1 and out["docs"] == 3 and out["identical_fraction"] == pytest.approx(1 / 3)


def test_pick_docs_spreads_over_the_rows_and_first_text_unwraps_lists():
    rows = [{"question_id": f"q{i}", "video": f"v{i}.mp4", "question": "?", "options": ["x", "y"], "answer": "A"}
            for i in range(9)]
    assert [d["id"] for d in pick_docs(rows, 3)] == ["q0", "q4", "q8"]
    assert [d["id"] for d in pick_docs(rows, 20)] == [f"q{i}" for i in range(9)]
    assert first_text([["B"]]) == "B" and first_text("C") == "C"


def test_both_task_definitions_give_the_same_prompt_and_video(tmp_path, monkeypatch):
    from harness.data.samples import load_samples
    from harness.data.tasks import get_task
    from harness.scoring.prompts import render

    work = write_workload(tmp_path / "w", 3, lengths=(48,))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(work.our_tasks))
    monkeypatch.setenv("P7_STAMPS", str(tmp_path))
    spec = importlib.util.spec_from_file_location("p7_utils", work.lmms_tasks / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    task = get_task(TASK)
    samples = load_samples(task)
    assert [s.id for s in samples] == [d["id"] for d in work.docs] and len(samples) == 3
    for sample, doc in zip(samples, work.docs):
        assert render(task.prompt(), sample, task.default_prompt).user == utils.doc_to_text(doc)
        assert utils.doc_to_visual(doc) == [sample.video] and Path(sample.video).is_file()
    stamps = [json.loads(line) for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert [s["event"] for s in stamps] == ["start"] * 3


def test_small_run_of_both_tools(tmp_path):
    if not (LMMS_BIN / "lmms-eval").exists():
        pytest.fail(f"{LMMS_BIN / 'lmms-eval'} missing: create it with `make lmms-venv` (make test does this first)")
    assert main(["--out", str(tmp_path), "--samples", "3", "--workers", "1", "--repeats", "1",
                 "--lengths", "600"]) == 0
    report = json.loads((tmp_path / "lmms_speed.json").read_text())
    (setting,) = report["P7"]
    assert setting["workers"] == 1 and setting["samples"] == 3
    for tool in ("ours", "lmms_eval"):
        assert setting[tool]["samples_per_s_end_to_end"] > 0 and setting[tool]["samples_per_s_steady"] > 0
    assert 0.0 <= setting["identical_fraction"] <= 1.0
    assert [p["id"] for p in setting["pairs"]] == report["workload"]["docs"] and len(setting["pairs"]) == 3
    assert all(isinstance(p["ours"], str) and isinstance(p["lmms_eval"], str) for p in setting["pairs"])
    assert all(p["same_frames"] for p in setting["pairs"])  # both read linspace(0, total - 1, 32) with decord
    assert not list(tmp_path.glob("tmp*")), "the scratch dir is removed"
