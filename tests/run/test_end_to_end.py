"""The whole path on the embedded default: needle task × tiny model, on a local Ray cluster."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.records import Sample
from harness.data.tasks import get_task
from harness.evaluate import EvalRequest, evaluate
from harness.model.specs import MODELS
from harness.run.config import RunnerConfig
from harness.run.pipeline import Pipeline


@pytest.fixture(scope="module")
def two_worker_run(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=6, out=str(out),
                                runner=RunnerConfig(workers=2)))


def test_journal_has_every_sample_once_with_its_fields(two_worker_run):
    lines = [json.loads(l) for l in (two_worker_run.run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({l["id"] for l in lines}) == 6
    for line in lines:
        assert line["status"] == "ok" and line["model"] == "tiny-uniform"  # it answers by option letter
        assert line["n_frames_decoded"] == 16 and len(line["frame_indices"]) == 16
        assert line["visual_tokens"] == 16 * 16 + 1  # 16 frames × 16 pooled tokens + image_newline
        assert line["needle_retained"] in (True, False)
        assert {"video_decode", "vision", "llm_prefill", "llm_decode", "total"} <= set(line["timings_s"])
        assert line["peak_rss_mb"] > 0 and line["gold"] in range(4)


def test_summary_files(two_worker_run):
    run_dir = two_worker_run.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["n"] == 6
    assert set(summary["metrics"]["breakdowns"]) == {"kind", "length_bucket", "depth_bucket"}
    assert summary["config"]["task_spec"]["task"] == "needle" and summary["config"]["model"] == "tiny-uniform"
    assert summary["versions"]["packages"]["torch"] == "2.14.1"
    assert summary["cost"]["samples_per_s"] > 0 and summary["cost"]["visual_tokens_mean"] == 257
    rows = list(csv.DictReader((run_dir / "summary.csv").open()))
    assert len(rows) == 1 and rows[0]["n"] == "6" and rows[0]["task"] == "needle"
    assert "| needle | tiny-uniform | 6 |" in (run_dir / "summary.md").read_text()


def test_offline_wandb_run_written(two_worker_run):
    run = Path(two_worker_run.wandb_dir)
    assert run.name.startswith("offline-run-") and run.is_relative_to(two_worker_run.run_dir)
    assert list(run.glob("run-*.wandb"))
    assert list(run.glob("files/media/table/samples_*.table.json"))


def test_one_and_two_workers_give_identical_predictions(ray_cluster, two_worker_run, tmp_path):
    one = evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=6, out=str(tmp_path), wandb=False,
                               runner=RunnerConfig(workers=1)))
    key = lambda r: (r.id, r.raw_output, r.pred, r.frame_indices)  # noqa: E731
    assert sorted(map(key, one.results)) == sorted(map(key, two_worker_run.results))


def test_bad_videos_become_statuses_not_crashes(tmp_path):
    task = get_task("needle")
    pipeline = Pipeline(MODELS.get("tiny-uniform"), task)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    base = dict(task="needle", question="q?", options=("a", "b", "c", "d"), answer=0)
    missing = pipeline.run(Sample(id="m", video=str(tmp_path / "nope.mp4"), **base))
    broken = pipeline.run(Sample(id="c", video=str(corrupt), **base))
    assert (missing.status, broken.status) == ("missing", "decode_error")
    assert "nope.mp4" in missing.error and not missing.correct


def test_unknown_names_exit_2_with_one_line(capsys):
    assert main(["eval", "--task", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown task 'nope'" in err and "needle" in err
    assert main(["eval", "--model", "tiny-unifrom"]) == 2
    assert "did you mean 'tiny-uniform'" in capsys.readouterr().err


def test_listing_commands():
    out = subprocess.run([sys.executable, "-m", "harness", "models"], capture_output=True, text=True, check=True)
    assert "tiny-uniform" in out.stdout
    out = subprocess.run([sys.executable, "-m", "harness", "tasks"], capture_output=True, text=True, check=True)
    assert any(line.startswith("needle ") for line in out.stdout.splitlines())
