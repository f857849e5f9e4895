"""Suites: several tasks in one run (one queue, one run directory per task, the suite table), the four
benchmarks' offline stand-ins in their published schemas, and a killed suite resumed from its directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from faults import SLOW_SPEC

from harness.core.config import ConfigError
from harness.data.samples import load_samples
from harness.data.tasks import get_task, task_names
from harness.evaluate import EvalRequest, run_suite
from harness.run.config import RunnerConfig
from harness.run.journal import read_journal

MINIS = ("videomme_mini", "mlvu_mini", "longvideobench_mini", "egoschema_mini")
FAST = RunnerConfig(workers=1, decode_in_model=True)


def test_task_names_expand_suites_and_lists():
    assert task_names("long4-mini") == MINIS
    assert task_names("needle,long4-mini,needle") == ("needle", *MINIS)
    with pytest.raises(ConfigError, match=r"unknown task or suite 'nope'.*suites: .*long4-mini"):
        task_names("needle,nope")


def test_the_stand_ins_read_through_the_real_adapters():
    videomme = load_samples(get_task("videomme_mini"))
    assert len(videomme) == 16 and {s.breakdown["duration"] for s in videomme} == {"short", "medium"}
    assert all(len(s.options) == 4 and not s.options[0].startswith("A. ") for s in videomme)
    assert get_task("videomme_mini").subtitles is not None  # the .srt path of the real task
    mlvu = load_samples(get_task("mlvu_mini"))
    assert {s.breakdown["task_type"] for s in mlvu} == {"needle", "count"} and "(A)" not in mlvu[0].question
    ego = load_samples(get_task("egoschema_mini"))
    assert all(len(s.options) == 5 for s in ego) and {s.answer for s in ego} <= set(range(5))
    full = load_samples(get_task("egoschema_full_mini"))
    assert [s.id for s in full] == [s.id for s in ego] and {s.answer for s in full} == {None}
    assert get_task("egoschema_full_mini").metric.submission == "video_id"
    lvb = load_samples(get_task("longvideobench_mini"))
    assert all(s.meta.get("subtitle_file", "").endswith("_en.json") for s in lvb)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    return run_suite(EvalRequest(task="long4-mini", model="tiny-uniform", limit=3, out=str(out), runner=FAST))


def test_a_suite_runs_every_task_in_one_queue_with_a_run_directory_each(suite):
    assert suite.suite_dir.name.startswith("long4-mini__tiny-uniform__")
    assert [o.summary.config["task"] for o in suite.outcomes] == list(MINIS)
    for outcome in suite.outcomes:
        assert outcome.run_dir.parent == suite.suite_dir
        assert len(list(read_journal(outcome.run_dir / "samples.jsonl"))) == 3
        assert (outcome.run_dir / "summary.json").is_file() and (outcome.run_dir / "config.json").is_file()
    index = json.loads((suite.suite_dir / "suite.json").read_text())
    assert index["runs"] == {o.summary.config["task"]: o.run_dir.name for o in suite.outcomes}
    assert sum(index["runner"]["statuses"].values()) == 12  # one queue: the runner saw all twelve samples
    (row,) = index["table"]
    mlvu = next(o for o in suite.outcomes if o.summary.config["task"] == "mlvu_mini").summary.metrics
    assert row["mlvu_mini"] == round(mlvu["mavg"], 2)  # MLVU's headline is its M-Avg
    table = suite.table.read_text()
    assert all(task in table for task in MINIS) and "| mean |" in table
    # one W&B run per task, all in the suite's group (several runs open at once in one process)
    runs = [list((o.run_dir / "wandb").glob("offline-run-*")) for o in suite.outcomes]
    assert all(len(r) == 1 for r in runs) and len({r[0].name for r in runs}) == 4
    assert len({o.wandb_dir for o in suite.outcomes}) == 4




def test_a_killed_suite_resumes_from_its_directory_without_redoing_samples(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "slow.yaml").write_text(SLOW_SPEC)
    env = {**os.environ, "HARNESS_SPECS_DIR": str(specs)}
    for task in MINIS:
        load_samples(get_task(task))  # the data exists before the subprocess starts
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "harness", "eval", "--task", "long4-mini", "--model", "slow", "--limit", "3",
           "--workers", "1", "--no-wandb", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if sum(j.read_text().count("\n") for j in out.glob("*/*/samples.jsonl")) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    (suite_dir,) = out.iterdir()
    assert f"--resume {suite_dir}" in err, err[-3000:]
    before = sum(len(list(read_journal(j))) for j in suite_dir.glob("*/samples.jsonl"))
    assert 2 <= before < 12
    done = subprocess.run([*cmd, "--resume", str(suite_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for journal in suite_dir.glob("*/samples.jsonl"):
        ids = Counter(r.id for r in read_journal(journal))
        assert len(ids) == 3 and set(ids.values()) == {1}, journal  # every sample exactly once
    index = json.loads((suite_dir / "suite.json").read_text())
    assert sum(index["runner"]["statuses"].values()) == 12 - before  # the resumed session ran only the rest
    assert "long4-mini" in done.stdout and "| mean |" in done.stdout
