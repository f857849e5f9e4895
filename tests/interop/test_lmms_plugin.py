"""The lmms-eval model plugin, exercised in lmms-eval's own venv through its registry (entry point)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LMMS_PYTHON = ROOT / ".venv-lmms" / "bin" / "python"


def test_lmms_eval_finds_builds_and_runs_our_spec(write_test_video):
    if not LMMS_PYTHON.exists():
        pytest.fail(f"{LMMS_PYTHON} missing: create it with `make lmms-venv` (make test does this first)")
    video = write_test_video("clip.mp4", num_frames=24, fps=4.0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run([str(LMMS_PYTHON), str(ROOT / "tests" / "lmms_plugin_probe.py"), str(video.path),
                           "qwen25vl-tiny-uniform"], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["listed"] and out["class"] == "HarnessLMM"
    assert len(out["answers"]) == 1 and isinstance(out["answers"][0], str) and out["answers"][0]
    assert "unknown model_args ['frames']" in out["typo"]


# A task of lmms-eval's own format over local files (`--include_path`), so its CLI runs offline.
LOCAL_TASK = """\
task: harness_local
dataset_path: json
dataset_kwargs:
  data_files: {docs}
test_split: train
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 4
process_results: !function utils.process_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
"""
LOCAL_UTILS = """\
def doc_to_visual(doc):
    return [doc["video"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"] + "\\nAnswer with the option's letter from the given choices directly."


def process_results(doc, results):
    return {"accuracy": float(results[0].strip()[:1] == doc["answer"])}
"""


# The same docs as a task of ours, for `harness score` on lmms-eval's samples file.
OUR_TASK = """\
task: harness_local
dataset: {{files: [docs.json], root: "{root}"}}
fields: {{id: id, video: video, question: question, options: options, answer: answer}}
prompts: {{plain: {{user: "{{question}}"}}}}
default_prompt: plain
"""


def test_lmms_eval_cli_runs_our_spec_on_a_task(write_test_video, tmp_path):
    if not LMMS_PYTHON.exists():
        pytest.fail(f"{LMMS_PYTHON} missing: create it with `make lmms-venv` (make test does this first)")
    videos = [write_test_video(f"v{i}.mp4", num_frames=24 + 8 * i, fps=4.0) for i in range(2)]
    docs = tmp_path / "docs.json"  # lmms-eval runs in tmp_path, so the relative video names resolve for both
    docs.write_text(json.dumps([{"id": f"q{i}", "video": v.path.name, "options": ["a square", "a circle"],
                                 "question": "What moves?\nA. a square\nB. a circle", "answer": "A"}
                                for i, v in enumerate(videos)]))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "harness_local.yaml").write_text(LOCAL_TASK.format(docs=docs))
    (tasks / "utils.py").write_text(LOCAL_UTILS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run([str(LMMS_PYTHON.parent / "lmms-eval"), "--model", "vilamp_harness", "--model_args",
                           "spec=tiny-uniform", "--tasks", "harness_local", "--include_path", str(tasks),
                           "--batch_size", "1", "--output_path", str(tmp_path / "out"), "--log_samples"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = (tmp_path / "out").rglob("*_results.json")
    (samples,) = (tmp_path / "out").rglob("*_samples_harness_local.jsonl")
    assert "harness_local" in json.loads(results.read_text())["results"], done.stderr[-3000:]
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [line["doc_id"] for line in lines] == [0, 1]
    assert all(isinstance(line["filtered_resps"], str) and "accuracy" in line for line in lines)

    # lmms-eval's samples file scored by `harness score` against the same docs as a task of ours
    ours = tmp_path / "our_tasks"
    ours.mkdir()
    (ours / "harness_local.yaml").write_text(OUR_TASK.format(root=tmp_path))
    done = subprocess.run([sys.executable, "-m", "harness", "score", "--task", "harness_local", "--predictions",
                           str(samples), "--out", str(tmp_path / "scored")], capture_output=True, text=True,
                          env={**env, "HARNESS_TASKS_DIR": str(ours)}, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    scored = [json.loads(line) for line in (tmp_path / "scored" / "samples.jsonl").read_text().splitlines()]
    assert [(line["id"], line["raw_output"]) for line in scored] == [(f"q{i}", lines[i]["filtered_resps"])
                                                                     for i in range(2)]
    assert {line["status"] for line in scored} <= {"ok", "unparsed"}
    summary = json.loads((tmp_path / "scored" / "summary.json").read_text())
    assert summary["metrics"]["n"] == 2 and summary["protocol"]["extractor"]["name"] == "mcq_letter"
