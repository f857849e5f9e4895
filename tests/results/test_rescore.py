"""`harness score` (outputs the harness did not produce) and `harness rescore` (a finished run re-extracted)."""

from __future__ import annotations

import json
from pathlib import Path

import benchdata
import pytest
from videos import write_video

from harness.cli import main
from harness.core.config import ConfigError
from harness.evaluate import EvalRequest, evaluate
from harness.results.rescore import rescore, score_predictions
from harness.run.config import RunnerConfig

FAST = RunnerConfig(workers=1, decode_in_model=True)
# the run's replies replaced by ones only a careful reader gets right (our extractor) or lmms-eval's does
REPLIES = ['{"answer": "B"}', "Answer - C", "A or B", "The answer is not D. It is C.", "(2)"]


@pytest.fixture(scope="module")
def videomme_run(tmp_path_factory):
    root = benchdata.videomme(lambda name, **kw: write_video(Path(name), **kw), tmp_path_factory.mktemp("data"))
    outcome = evaluate(EvalRequest(task="videomme", model="tiny-uniform", data_root=str(root),
                                   out=str(tmp_path_factory.mktemp("runs")), wandb=False, runner=FAST))
    return root, outcome


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_score_on_a_runs_own_predictions_reproduces_its_summary(videomme_run, tmp_path):
    root, outcome = videomme_run
    lines = _lines(outcome.run_dir)
    assert {line["status"] for line in lines} == {"ok", "missing"}  # one video of the fixture is absent
    predictions = tmp_path / "preds.jsonl"  # what a user builds: the answered samples' ids and replies
    predictions.write_text("".join(json.dumps({"id": line["id"], "response": line["raw_output"]}) + "\n"
                                   for line in lines if line["status"] == "ok"))
    out, summary = score_predictions("videomme", predictions, data_root=str(root), out=str(tmp_path / "scored"))
    run_metrics = json.loads((outcome.run_dir / "summary.json").read_text())["metrics"]
    assert json.loads((out / "summary.json").read_text())["metrics"] == run_metrics
    # the run's journal itself is a predictions file too (its failures keep their status)
    out, _ = score_predictions("videomme", outcome.run_dir / "samples.jsonl", data_root=str(root),
                               out=str(tmp_path / "journal"))
    assert json.loads((out / "summary.json").read_text())["metrics"] == run_metrics
    assert {p.name for p in out.iterdir()} >= {"samples.jsonl", "summary.json", "summary.md", "summary.csv"}
    assert summary.provenance["protocol"]["extractor"]["name"] == "mcq_letter"


def test_score_marks_missing_ids_and_refuses_unknown_ones(videomme_run, tmp_path):
    root, outcome = videomme_run
    first, *rest = _lines(outcome.run_dir)
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text(json.dumps({"id": first["id"], "response": "B"}) + "\n")
    out, summary = score_predictions("videomme", predictions, data_root=str(root), out=str(tmp_path / "a"))
    statuses = {line["id"]: line["status"] for line in _lines(out)}
    assert statuses.pop(first["id"]) == "ok" and set(statuses.values()) == {"missing"} and len(statuses) == len(rest)
    predictions.write_text(json.dumps({"id": "999-9", "response": "B"}) + "\n")
    with pytest.raises(ConfigError, match=r"1 ids are not in the task videomme's annotations.*'999-9'"):
        score_predictions("videomme", predictions, data_root=str(root), out=str(tmp_path / "b"))
    predictions.write_text('{"id": "001-1", "response": "B"}\nnot json\n')
    with pytest.raises(ConfigError, match=r"preds.jsonl:2: not JSON"):
        score_predictions("videomme", predictions, data_root=str(root), out=str(tmp_path / "c"))
    predictions.write_text('{"id": "001-1", "response": "B"}\n{"id": "001-1", "response": "C"}\n')
    with pytest.raises(ConfigError, match=r"preds.jsonl:2: id '001-1' already predicted on line 1"):
        score_predictions("videomme", predictions, data_root=str(root), out=str(tmp_path / "d"))


def test_rescore_re_extracts_a_run_and_names_the_extractor(videomme_run, tmp_path, capsys):
    _, outcome = videomme_run
    lines = sorted(_lines(outcome.run_dir), key=lambda line: line["id"])  # the order rescore writes, not the run's
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text((outcome.run_dir / "config.json").read_text())
    (run_dir / "samples.jsonl").write_text("".join(
        json.dumps({**line, "raw_output": reply}) + "\n" for line, reply in zip(lines, REPLIES, strict=True)))
    ours_dir, ours = rescore(run_dir)
    theirs_dir, theirs = rescore(run_dir, "lmms-eval")
    assert ours_dir == run_dir / "rescore__mcq_letter" and theirs_dir == run_dir / "rescore__lmms-eval-mcq"
    assert [line["pred"] for line in _lines(ours_dir)] == [1, 2, None, 2, None]
    assert [line["pred"] for line in _lines(theirs_dir)] == [1, 2, 0, 2, None]  # lmms-eval: "A or B" → A
    protocol = json.loads((theirs_dir / "summary.json").read_text())["protocol"]["extractor"]
    assert protocol["name"] == "lmms-eval-mcq" and protocol["version"] == 1 and protocol["code_sha"]
    assert ours.provenance["protocol"]["extractor"]["name"] == "mcq_letter"
    config = json.loads((theirs_dir / "config.json").read_text())
    assert config["rescored_from"] == outcome.summary.config["run_id"]
    assert config["run_id"] == f"{outcome.summary.config['run_id']}__rescore-lmms-eval-mcq"
    assert main(["rescore", str(run_dir), "--extractor", "lmms-eval"]) == 0
    assert "scored with lmms-eval-mcq" in capsys.readouterr().out
    assert main(["rescore", str(run_dir), "--extractor", "nope"]) == 2
