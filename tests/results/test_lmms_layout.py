"""results/<run>/ also in lmms-eval's layout: results JSON keys and one samples line per doc."""

import json

from harness.core.records import Sample, SampleResult
from harness.results.lmms_layout import write_lmms_layout


def test_videomme_run_in_lmms_eval_layout(tmp_path):
    samples = [Sample(id=f"00{i}-1", task="videomme", video=f"/v/{i}.mp4", question="q", options=("a", "b", "c", "d"),
                      answer=i % 4, video_id=f"vid{i}", meta={"sub_category": "Esports"}) for i in range(3)]
    results = [SampleResult(id=s.id, task="videomme", model="m", status="ok", gold=s.answer, pred=1,
                            correct=s.answer == 1, raw_output="B", video_id=s.video_id,
                            breakdown={"duration": "short", "domain": "Sports Competition", "task_type": "Counting Problem"})
               for s in samples]
    metrics = {"accuracy": 100 / 3, "accuracy_stderr": 27.2, "breakdowns": {}}
    config = {"task_version": 1, "limit": 3, "run_id": "r", "task_spec": {"generation": {"max_new_tokens": 16}}}
    res_path, samples_path = write_lmms_layout(tmp_path, "videomme", "tiny-uniform", metrics, results, samples, config)
    doc = json.loads(res_path.read_text())
    assert res_path.parent == tmp_path / "lmms_eval" / "tiny-uniform" and res_path.name.endswith("_results.json")
    assert {"results", "groups", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
            "config", "date"} <= set(doc)
    assert abs(doc["results"]["videomme"]["videomme_perception_score,none"] - 100 / 3) < 1e-9  # percent, as upstream
    assert doc["n-samples"]["videomme"] == {"original": 3, "effective": 3}
    assert doc["config"]["model_args"] == "spec=tiny-uniform"
    lines = [json.loads(line) for line in samples_path.read_text().splitlines()]
    assert samples_path.name.endswith("_samples_videomme.jsonl") and [l["doc_id"] for l in lines] == [0, 1, 2]
    score = lines[1]["videomme_perception_score"]
    assert score["pred_answer"] == "B" and score["answer"] == "B" and score["score"] == 1
    assert score["sub_category"] == "Esports" and lines[1]["filtered_resps"] == ["B"]


def test_longvideobench_is_a_fraction_and_unknown_tasks_report_accuracy(tmp_path):
    sample = Sample(id="x", task="longvideobench", video="/v.mp4", question="q", options=("a", "b"), answer=0)
    result = SampleResult(id="x", task="longvideobench", model="m", status="ok", gold=0, pred=0, correct=True)
    metrics = {"accuracy": 100.0, "accuracy_stderr": 0.0}
    res, _ = write_lmms_layout(tmp_path, "longvideobench", "m", metrics, [result], [sample], {})
    assert json.loads(res.read_text())["results"]["longvideobench_val_v"]["lvb_acc,none"] == 1.0
    res, lines = write_lmms_layout(tmp_path / "n", "needle", "m", metrics, [result], [sample], {})
    assert json.loads(res.read_text())["results"]["needle"]["accuracy,none"] == 1.0
    assert json.loads(lines.read_text())["accuracy"] == 1
