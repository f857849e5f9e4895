"""--resume: an interrupted run finishes to the same summary as an uninterrupted one; the journal is safe."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from faults import SLOW_SPEC

from harness.cli import main
from harness.core.config import ConfigError
from harness.core.records import SampleResult
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.evaluate import EvalRequest, evaluate, resolve
from harness.run.interrupt import Interrupted, interrupted_in, stop_on_signals
from harness.run.journal import Journal, read_journal

LIMIT = 10  # with SLOW_SPEC's 0.5 s a sample: ≥ 4.5 s to go after the first journal line


@pytest.fixture(scope="module")
def slow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of `harness eval` subprocesses that know the spec `slow`."""
    specs = tmp_path_factory.mktemp("specs")
    (specs / "slow.yaml").write_text(SLOW_SPEC)
    load_samples(get_task("needle"), limit=LIMIT)  # generate the data before any subprocess runs
    return {**os.environ, "HARNESS_SPECS_DIR": str(specs)}


def harness_eval(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "eval", "--task", "needle", "--model", "slow", "--limit", str(LIMIT),
            "--workers", "1", "--no-wandb", "--out", str(out), *extra]


def run_to_end(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(slow_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    run_to_end(harness_eval(out), slow_env)
    (run_dir,) = out.iterdir()
    return run_dir


def start_with_sigint_ignored(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `cmd` as a script's background job (`cmd &`), nohup or a CI runner does: inheriting SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def first_journal_line(out: Path, proc: subprocess.Popen[str]) -> Path:
    """The journal of the run under `out`, once it holds a line."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        for journal in out.glob("*/samples.jsonl"):
            if journal.read_text().count("\n") >= 1:
                return journal
        time.sleep(0.02)
    pytest.fail(f"no journal line before the run ended: {proc.communicate()}")


def test_the_signal_tests_start_their_run_with_sigint_ignored() -> None:
    code = "import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    probe = start_with_sigint_ignored([sys.executable, "-c", code], dict(os.environ))
    assert probe.communicate(timeout=60)[0].strip() == "True"


# SIGTERM takes the same path as SIGINT after the handler (~40 s a case): `slow`, run with `-m slow`.
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130),
                                              pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_then_resume_gives_the_uninterrupted_summary(slow_env: dict[str, str], uninterrupted: Path,
                                                            tmp_path: Path, signum: signal.Signals, code: int) -> None:
    out = tmp_path / "interrupted"
    proc = start_with_sigint_ignored(harness_eval(out), slow_env)
    journal = first_journal_line(out, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    resume = harness_eval(out, "--resume", str(journal.parent))
    assert proc.returncode == code, err[-3000:]
    assert f"{signum.name}: stopped" in err and shlex.join(resume) in err, err[-3000:]
    assert 1 <= len(list(read_journal(journal))) < LIMIT

    run_to_end(resume, slow_env)  # the printed command
    ids = Counter(r.id for r in read_journal(journal))
    assert len(ids) == LIMIT and set(ids.values()) == {1}  # every sample exactly once
    key = lambda r: (r.id, r.status, r.raw_output, r.pred, r.frame_indices)  # noqa: E731
    assert sorted(map(key, read_journal(journal))) == sorted(map(key, read_journal(uninterrupted / "samples.jsonl")))
    metrics = lambda run_dir: json.loads((run_dir / "summary.json").read_text())["metrics"]  # noqa: E731
    assert metrics(journal.parent) == metrics(uninterrupted)  # scores and breakdowns; timings naturally differ


def test_stop_on_signals_names_the_signal_when_ray_raised_a_plain_keyboard_interrupt(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        with pytest.raises(Interrupted):
            signal.raise_signal(signal.SIGTERM)  # the handler's own exception
        raise interrupted_in(tmp_path, KeyboardInterrupt())  # ray.wait's in its place, named by evaluate
    assert (caught.value.signum, caught.value.exit_code, caught.value.run_dir) == (signal.SIGTERM, 143, tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before


def test_resume_refuses_another_config_naming_what_differs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = resolve(EvalRequest(task="needle", model="tiny-uniform", limit=4)).config
    (run_dir / "config.json").write_text(json.dumps({**config, "run_id": "r1"}, default=str))
    with pytest.raises(ConfigError, match=r"differs in: limit"):
        evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=5, wandb=False, resume=str(run_dir)))
    capsys.readouterr()  # drop what came before main: the needle data's progress bar, when this test generated it
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


def test_a_failing_fsync_on_the_journal_thread_reaches_the_driver(tmp_path, monkeypatch):
    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    journal = Journal(tmp_path / "samples.jsonl", sync_every_s=0.01)
    journal.append(SampleResult(id="a", task="t", model="m", status="ok", gold=0, pred=0, correct=True))
    monkeypatch.setattr("harness.run.journal.os.fsync", no_space)
    deadline = time.monotonic() + 30
    while journal._sync_error is None and time.monotonic() < deadline:  # the thread's next interval
        journal.append(SampleResult(id="b", task="t", model="m", status="ok", gold=0, pred=0, correct=True))
        time.sleep(0.02)
    with pytest.raises(OSError, match="samples.jsonl: fsync failed: .*No space left"):
        journal.append(SampleResult(id="c", task="t", model="m", status="ok", gold=0, pred=0, correct=True))
    with pytest.raises(OSError, match="fsync failed"):
        journal.close()
    assert [r.id for r in read_journal(tmp_path / "samples.jsonl")][0] == "a"  # what was written stays
