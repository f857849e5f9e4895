"""--resume: an interrupted run finishes to the same summary as an uninterrupted one; the journal is safe."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.config import ConfigError
from harness.evaluate import EvalRequest, evaluate, run_config
from harness.run.journal import Journal, read_journal
from harness.core.records import SampleResult
from harness.run.runner import RunnerConfig
from harness.data.samples import load_samples
from harness.data.tasks import get_task

LIMIT = 10


def comparable(summary: dict) -> dict:
    """What must not depend on interruption: scores and breakdowns (timings naturally differ)."""
    return summary["metrics"]


def test_sigint_then_resume_gives_the_uninterrupted_summary(ray_cluster, tmp_path):
    load_samples(get_task("needle"), limit=LIMIT)  # generate the data before the clock of the subprocess starts
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "harness", "eval", "--task", "needle", "--model", "tiny-uniform",
           "--limit", str(LIMIT), "--workers", "1", "--no-wandb", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob("*/samples.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            journal = found[0]
            break
        time.sleep(0.05)
    assert journal is not None, f"no journal lines before the run ended: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err
    before = len(list(read_journal(journal)))
    assert 2 <= before < LIMIT, "the run finished before the interrupt; raise LIMIT"

    resumed = evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=LIMIT, wandb=False,
                                   resume=str(journal.parent), runner=RunnerConfig(workers=2)))
    whole = evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=LIMIT, wandb=False,
                                 out=str(tmp_path / "whole"), runner=RunnerConfig(workers=2)))
    ids = Counter(r.id for r in read_journal(journal))
    assert len(ids) == LIMIT and set(ids.values()) == {1}  # every sample exactly once
    assert comparable(resumed.summary) == comparable(whole.summary)
    key = lambda r: (r.id, r.status, r.raw_output, r.pred, r.frame_indices)  # noqa: E731
    assert sorted(map(key, resumed.results)) == sorted(map(key, whole.results))
    saved = json.loads((journal.parent / "summary.json").read_text())
    assert saved["metrics"] == json.loads(json.dumps(whole.summary["metrics"]))


def test_resume_refuses_another_config_naming_what_differs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = run_config(EvalRequest(task="needle", model="tiny-uniform", limit=4))
    (run_dir / "config.json").write_text(json.dumps({**config, "run_id": "r1"}, default=str))
    with pytest.raises(ConfigError, match=r"differs in: limit"):
        evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=5, wandb=False, resume=str(run_dir)))
    assert main(["eval", "--limit", "4", "--model", "tiny-uniform-1fps", "--resume", str(run_dir), "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model" in err and str(run_dir) in err
    assert main(["eval", "--resume", str(tmp_path / "nowhere"), "--no-wandb"]) == 2
    assert "config.json" in capsys.readouterr().err


def test_torn_last_line_is_cut_before_appending(tmp_path):
    path = tmp_path / "samples.jsonl"
    first = SampleResult(id="a", task="t", model="m", status="ok", gold=0, pred=0, correct=True)
    journal = Journal(path)
    journal.append(first)
    journal.close()
    with path.open("a") as f:
        f.write('{"id": "b", "task": "t", "mo')  # a crash mid-write
    journal = Journal(path)
    journal.append(SampleResult(id="c", task="t", model="m", status="unparsed", gold=1, frame_indices=(1, 2)))
    journal.close()
    results = list(read_journal(path))
    assert [r.id for r in results] == ["a", "c"] and results[1].frame_indices == (1, 2)
    assert path.read_text().count("\n") == 2 and os.path.getsize(path) > 0
