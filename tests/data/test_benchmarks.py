"""The four benchmarks: loaders on exact-schema fixtures, prompts, subtitles, scoring, and end-to-end runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import benchdata
import pandas as pd
import pytest

from harness.core.config import ConfigError
from harness.core.records import SampleResult
from harness.core.status import ANSWERED
from harness.data.adapters import ADAPTERS
from harness.data.samples import load_samples
from harness.data.subtitles import Line, covering_frames, for_prompt, interleaved, parse_lvb_json, parse_srt
from harness.data.tasks import discover, get_task
from harness.evaluate import EvalRequest, evaluate
from harness.model.specs import MODELS
from harness.run.config import RunnerConfig
from harness.run.pipeline import Pipeline
from harness.scoring.metrics import submission, summarize, task_metrics
from harness.scoring.prompts import render

FAST = RunnerConfig(workers=1, decode_in_model=True)  # one actor: the machine has 2 shared cores
FRAME_TIMES = [k / benchdata.VIDEO_FPS for k in range(benchdata.VIDEO_FRAMES)]


def run(task: str, root: Path, out: Path, **kw) -> tuple[dict, list[dict]]:
    outcome = evaluate(EvalRequest(task=task, model="tiny-uniform", data_root=str(root), out=str(out), wandb=False,
                                   runner=FAST, **kw))
    lines = [json.loads(l) for l in (outcome.run_dir / "samples.jsonl").read_text().splitlines()]
    return json.loads((outcome.run_dir / "summary.json").read_text()), lines


def same_groups(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> bool:
    return got.keys() == want.keys() and all(
        got[k]["n"] == want[k]["n"] and got[k]["accuracy"] == pytest.approx(want[k]["accuracy"]) for k in got)


def regrouped(lines: list[dict], key: str) -> dict[str, dict[str, float]]:
    """Per-group accuracy recomputed from the journal (gold vs pred), to check the summary's arithmetic."""
    groups: dict[str, list[bool]] = {}
    for line in lines:
        groups.setdefault(line["breakdown"][key], []).append(line["pred"] is not None and line["pred"] == line["gold"])
    return {k: {"accuracy": 100.0 * sum(v) / len(v), "n": len(v)} for k, v in sorted(groups.items())}


# ---------------------------------------------------------------- loaders on the published schemas


def test_videomme_loader_resolves_mp4_mkv_MP4_and_strips_option_letters(write_test_video, tmp_path):
    root = benchdata.videomme(write_test_video, tmp_path)
    samples = {s.id: s for s in load_samples(get_task("videomme"), root)}
    assert len(samples) == 5
    assert samples["001-1"].options == ("One.", "Two.", "Three.", "Four.") and samples["001-2"].answer == 2
    assert samples["002-1"].video.endswith("data/bbbbbbbbbbb.mkv")
    assert samples["003-1"].video.endswith("data/ccccccccccc.MP4")
    assert samples["004-1"].video.endswith("data/ddddddddddd.mp4") and not Path(samples["004-1"].video).exists()
    assert samples["002-1"].breakdown == {"duration": "medium", "domain": "Sports Competition",
                                          "task_type": "OCR Problems"}
    assert samples["001-1"].video_id == "aaaaaaaaaaa" and samples["001-1"].meta["video_id"] == "001"


def test_mlvu_adapter_takes_options_from_question_and_checks_candidates(write_test_video, tmp_path):
    root = benchdata.mlvu(write_test_video, tmp_path)
    samples = load_samples(get_task("mlvu"), root)
    assert [s.options for s in samples] == [tuple(o) for _, _, o, _, _ in benchdata.MLVU]
    assert [s.answer for s in samples] == [0, 2, 1, 3]
    assert samples[0].question == "What happens in clip 0?" and samples[0].breakdown == {"task_type": "needle"}
    # rows as pandas gives them: list columns are numpy arrays
    row = pd.read_parquet(root / "mlvu/test-00000-of-00001.parquet").iloc[1].to_dict()
    assert type(row["candidates"]).__name__ == "ndarray"
    assert ADAPTERS.get("mlvu")(row)["options"] == ["a dog", "a cat", "a cow", "a hen"]
    row["candidates"] = row["candidates"][:3]
    with pytest.raises(ConfigError, match="'candidates' does not hold the options"):
        ADAPTERS.get("mlvu")(row)


def test_mlvu_github_json_form_with_text_answer_and_findNeedle():
    row = {"video": "needle_32.mp4", "duration": 400.0, "question": "What is the needle?",
           "candidates": ["a key", "a cup", "a pen", "a hat"], "answer": "a pen", "question_type": "findNeedle"}
    out = ADAPTERS.get("mlvu")(row)
    assert (out["answer"], out["task_type"], out["video_name"]) == ("C", "needle", "needle_32.mp4")
    assert out["options"] == row["candidates"] and out["question_stem"] == "What is the needle?"


def test_longvideobench_json_and_parquet_forms_agree(write_test_video, tmp_path):
    root = benchdata.longvideobench(write_test_video, tmp_path)
    from_json = load_samples(get_task("longvideobench"), root)
    assert [len(s.options) for s in from_json] == [5, 4, 3] and [s.answer for s in from_json] == [4, 1, 0]
    frame = pd.read_parquet(root / "validation-00000-of-00001.parquet")
    assert list(frame.loc[2, [f"option{i}" for i in range(5)]]) == ["yes", "no", "maybe", "N/A", "N/A"]
    adapt = ADAPTERS.get("longvideobench")
    from_parquet = [adapt(r)["options"] for r in frame.to_dict("records")]
    assert from_parquet == [list(s.options) for s in from_json]
    assert adapt({**frame.to_dict("records")[0], "correct_choice": "@"})["correct_choice"] is None  # test split
    interleaved_task = load_samples(get_task("longvideobench_i"), root)
    assert interleaved_task[1].meta["subtitle_offset_s"] == 1.0 and "subtitle_file" not in from_json[1].meta
    assert interleaved_task[1].meta["subtitle_file"].endswith("subtitles/v2_en.json")
    assert from_json[0].breakdown == {"duration_group": "15", "question_category": "S2E"}


def test_egoschema_subset_index_answers_and_full_set_nulls(write_test_video, tmp_path):
    root = benchdata.egoschema(write_test_video, tmp_path)
    subset = load_samples(get_task("egoschema"), root)
    full = load_samples(get_task("egoschema_full"), root)
    assert [s.answer for s in subset] == [4, 0, 2] and all(s.answer is None for s in full)
    assert subset[0].options[0] == "option 0 of 0." and len(subset[0].options) == 5
    assert subset[2].video.endswith(f"{benchdata.EGO_UIDS[2]}.MP4") and subset[0].video_id == benchdata.EGO_UIDS[0]
    # the original questions.json form (q_uid, "option 0"…"option 4") reads too
    original = {"q_uid": "abc", "google_drive_id": "x", "question": "q?", **{f"option {i}": f"t{i}" for i in range(5)}}
    out = ADAPTERS.get("egoschema")(original)
    assert (out["video_idx"], out["option"][4], out["answer"]) == ("abc", "E. t4", None)


def test_video_path_never_escapes_the_root(write_test_video, tmp_path):
    root = benchdata.egoschema(write_test_video, tmp_path)
    frame = pd.read_parquet(root / "Subset/test-00000-of-00001.parquet")
    frame.loc[0, "video_idx"] = "../../etc/passwd"
    frame.to_parquet(root / "Subset/test-00000-of-00001.parquet", index=False)
    with pytest.raises(ConfigError, match="escapes the data root"):
        load_samples(get_task("egoschema"), root)


# ---------------------------------------------------------------- prompts


def test_mlvu_lmms_eval_prompt_is_the_published_question_plus_post_prompt(write_test_video, tmp_path):
    task = get_task("mlvu")
    sample = load_samples(task, benchdata.mlvu(write_test_video, tmp_path))[2]
    prompt = render(task.prompt("lmms-eval"), sample, "lmms-eval")
    raw = benchdata.mlvu_question(2, benchdata.MLVU[2][2])
    assert prompt.user == raw + "\nOnly give the best option.\nBest option: ("  # lmms-eval: question + post_prompt
    official = render(task.prompt("official"), sample, "official")
    assert official.user == "Question: What happens in clip 2?\nOptions:\n(A) 1\n(B) 2\n(C) 3\n(D) 4\nOnly give the best option."
    assert official.assistant_prefix == "Best Option: (" and official.system.startswith("Carefully watch this video")


def test_videomme_official_and_vilamp_prompts(write_test_video, tmp_path):
    task = get_task("videomme")
    sample = load_samples(task, benchdata.videomme(write_test_video, tmp_path))[0]
    official = render(task.prompt("official"), sample, "official").user
    assert official == ("Select the best answer to the following multiple-choice question based on the video. Respond "
                        "with only the letter (A, B, C, or D) of the correct option.\nHow many things in video 001, "
                        "question 1?\nA. One.\nB. Two.\nC. Three.\nD. Four.\nThe best answer is:")
    vilamp = render(task.prompt("vilamp"), sample, "vilamp").user
    assert vilamp.endswith("options: ['A. One.', 'B. Two.', 'C. Three.', 'D. Four.'].")


def test_every_benchmark_task_has_its_profiles():
    for name in ("videomme", "videomme_w_subtitle", "mlvu", "mlvu_test", "longvideobench", "longvideobench_i"):
        assert {"official", "lmms-eval", "vilamp"} <= set(get_task(name).prompts), name
    for name in ("egoschema", "egoschema_full"):  # the authors publish no prompt template
        assert set(get_task(name).prompts) == {"lmms-eval", "vilamp"}


# ---------------------------------------------------------------- subtitles


def test_srt_parse_and_videomme_frame_rule():
    lines = parse_srt(benchdata.VIDEOMME_SRT, "x.srt")
    assert lines[0] == Line(0.0, 0.5, "hello there") and len(lines) == 3
    assert [l.text for l in covering_frames(lines, FRAME_TIMES)] == ["hello there", "general idea"]
    # [start, end): a frame exactly at 0.5 s belongs to the second line only
    assert [l.text for l in covering_frames(lines, [0.5])] == ["general idea"]
    assert covering_frames(lines, [2.0, 4.99]) == []


def test_longvideobench_interleave_rule_with_offset_and_widening():
    v2 = parse_lvb_json(json.dumps(benchdata.LVB_SUBTITLES["v2_en.json"]), "v2")
    kept = interleaved(v2, FRAME_TIMES, offset_s=1.0)
    assert [l.text for l in kept] == ["shifted line", "short line"]
    assert [(l.start_s, l.end_s) for l in kept] == [pytest.approx((0.25, 1.25)), pytest.approx((0.6, 1.6))]
    assert [l.text for l in interleaved(v2, [1.5], offset_s=1.0)] == ["short line"]  # outside the widened 0.25–1.25
    v1 = parse_lvb_json(json.dumps(benchdata.LVB_SUBTITLES["v1_en.json"]), "v1")
    assert [l.text for l in interleaved(v1, FRAME_TIMES, 0.0)] == ["first words"]


def test_subtitles_for_prompt_and_missing_file(write_test_video, tmp_path):
    task = get_task("videomme_w_subtitle")
    samples = {s.id: s for s in load_samples(task, benchdata.videomme(write_test_video, tmp_path))}
    assert for_prompt(task.subtitles, samples["001-1"], [0.25, 0.75]) == "hello there\ngeneral idea"
    assert for_prompt(task.subtitles, samples["001-1"], [0.25]) == "hello there"
    assert for_prompt(task.subtitles, samples["002-1"], [0.25]) == "No subtitles available"
    prompt = render(task.prompt("official"), samples["001-1"], "official", "hello there").user
    assert prompt.startswith("This video's subtitles are listed below:\nhello there\nSelect the best answer")


# ---------------------------------------------------------------- scoring arithmetic (hand-computed)


def _result(i: int, correct: bool, group: str, status: str = "ok", gold: int | None = 0) -> SampleResult:
    return SampleResult(id=f"q{i}", task="t", model="m", status=status, gold=gold, pred=0 if correct else 1,
                        correct=correct, video_id=f"v{i}", breakdown={"task_type": group})


def test_mavg_is_the_unweighted_mean_of_task_accuracies():
    # count: 2/3, needle: 1/1, order: 0/2 → M-Avg (66.67 + 100 + 0) / 3 = 55.56; plain accuracy 3/6 = 50
    results = [_result(0, True, "count"), _result(1, True, "count"), _result(2, False, "count"),
               _result(3, True, "needle"), _result(4, False, "order"), _result(5, False, "order")]
    m = summarize(results, ["task_type"])
    m.update(task_metrics(m, "mavg", "task_type"))
    assert m["accuracy"] == pytest.approx(50.0) and m["mavg"] == pytest.approx((200 / 3 + 100 + 0) / 3)
    assert m["mavg_groups"] == 3 and m["breakdowns"]["task_type"]["count"]["accuracy"] == pytest.approx(200 / 3)
    assert task_metrics(m, "accuracy", None) == {}


def test_accuracy_over_all_samples_and_over_samples_with_video():
    # 4 labelled: 2 correct, 1 wrong, 1 missing video → 2/4 = 50 overall, 2/3 = 66.67 with video
    results = [_result(0, True, "a"), _result(1, True, "a"), _result(2, False, "a"),
               _result(3, False, "a", status="missing")]
    m = summarize(results, [])
    assert m["accuracy"] == pytest.approx(50.0) and m["accuracy_with_video"] == pytest.approx(200 / 3)
    assert m["n_with_video"] == 3


def test_unlabelled_set_gets_no_score_but_a_submission():
    results = [_result(0, True, "a", gold=None), _result(1, False, "a", gold=None),
               SampleResult(id="q2", task="t", model="m", status="unparsed", gold=None, video_id="v2")]
    m = summarize(results, [])
    assert m["n_scored"] == 0 and math.isnan(m["accuracy"])
    assert submission(results, "video_id") == {"v0": 0, "v1": 1, "v2": -1}


# ---------------------------------------------------------------- end to end with the tiny model


def test_videomme_end_to_end_with_a_missing_video(ray_cluster, write_test_video, tmp_path):
    root = benchdata.videomme(write_test_video, tmp_path / "data")
    summary, lines = run("videomme", root, tmp_path / "runs")
    m = summary["metrics"]
    assert m["n"] == 5 and m["status_counts"].get("missing") == 1 and m["n_with_video"] == 4
    assert {l["id"]: l["status"] for l in lines}["004-1"] == "missing"
    assert all(l["prompt_profile"] == "official" for l in lines)
    assert summary["config"]["prompt_profile"] == "official"
    for key in ("duration", "domain", "task_type"):
        assert same_groups(m["breakdowns"][key], regrouped(lines, key)), key
    assert {k: v["n"] for k, v in m["breakdowns"]["duration"].items()} == {"long": 2, "medium": 1, "short": 2}
    correct = sum(l["pred"] == l["gold"] for l in lines)
    assert m["accuracy"] == pytest.approx(100 * correct / 5)
    assert m["accuracy_with_video"] == pytest.approx(100 * correct / 4)  # the missing one is never correct
    assert "acc_with_video" in (next((tmp_path / "runs").iterdir()) / "summary.csv").read_text()


def in_process(*tasks: str) -> list[Pipeline]:
    """Pipelines for `tasks` sharing one tiny backbone, run without Ray (variants of a task run end to end)."""
    pipelines = [Pipeline(MODELS.get("tiny-uniform"), get_task(t)) for t in tasks]
    for p in pipelines[1:]:
        p._backbone = pipelines[0].backbone
    return pipelines


def test_videomme_subtitles_and_egoschema_subset_in_process(write_test_video, tmp_path):
    plain, subs, ego = in_process("videomme", "videomme_w_subtitle", "egoschema")
    root = benchdata.videomme(write_test_video, tmp_path / "mme")
    first = {t: load_samples(p.task, root)[0] for t, p in (("plain", plain), ("subs", subs))}
    a, b = plain.run(first["plain"]), subs.run(first["subs"])
    assert a.status in ANSWERED and b.status in ANSWERED
    # the subtitle header and the two lines covering sampled frames lengthen the prompt
    header = len(subs.backbone.tokenizer("This video's subtitles are listed below:\nhello there\ngeneral idea\n")
                 ["input_ids"])
    assert b.text_tokens - a.text_tokens == pytest.approx(header, abs=3)
    samples = load_samples(ego.task, benchdata.egoschema(write_test_video, tmp_path / "ego"))
    results = [ego.run(s) for s in samples]
    m = summarize(results, [])
    assert m["n_scored"] == 3 and m["accuracy"] == pytest.approx(100 * sum(r.pred == r.gold for r in results) / 3)


def test_mlvu_end_to_end_reports_mavg(ray_cluster, write_test_video, tmp_path):
    summary, lines = run("mlvu", benchdata.mlvu(write_test_video, tmp_path / "data"), tmp_path / "runs")
    m = summary["metrics"]
    groups = regrouped(lines, "task_type")
    assert same_groups(m["breakdowns"]["task_type"], groups)
    assert m["mavg"] == pytest.approx(sum(g["accuracy"] for g in groups.values()) / 3) and m["mavg_groups"] == 3
    assert {l["status"] for l in lines} <= ANSWERED


def test_longvideobench_interleaved_end_to_end_in_process(write_test_video, tmp_path):
    (pipeline,) = in_process("longvideobench_i")
    samples = load_samples(pipeline.task, benchdata.longvideobench(write_test_video, tmp_path))
    results = [pipeline.run(s) for s in samples]
    assert [r.status in ANSWERED for r in results] == [True] * 3
    m = summarize(results, pipeline.task.metric.breakdown)
    # hand count: S2E holds v1_0 and v3_0, T3O holds v2_0
    assert {k: v["n"] for k, v in m["breakdowns"]["question_category"].items()} == {"S2E": 2, "T3O": 1}
    s2e = [r.correct for r in results if r.breakdown["question_category"] == "S2E"]
    assert m["breakdowns"]["question_category"]["S2E"]["accuracy"] == pytest.approx(50.0 * sum(s2e))


def test_egoschema_full_set_writes_a_submission_and_no_score(ray_cluster, write_test_video, tmp_path):
    root = benchdata.egoschema(write_test_video, tmp_path / "data")
    full = evaluate(EvalRequest(task="egoschema_full", model="tiny-uniform", data_root=str(root),
                                out=str(tmp_path / "full"), wandb=False, runner=FAST))
    assert full.summary.metrics["n_scored"] == 0 and math.isnan(full.summary.metrics["accuracy"])
    sub = json.loads((full.run_dir / "submission.json").read_text())
    assert set(sub) == set(benchdata.EGO_UIDS) and all(v in range(-1, 5) for v in sub.values())
    assert sub == {r.video_id: (-1 if r.pred is None else r.pred) for r in full.results}


NEW_TASK = """
task: tinybench
include: {base}
description: a benchmark added by writing only this file
dataset: {{files: [qa.jsonl], split: test, published_rows: 2}}
fields: {{id: uid, video: clip, question: prompt, options: choices, answer: gold, answer_format: text}}
video_path: "{{root}}/clips/{{clip}}.mp4"
metric: {{breakdown: [skill]}}
"""


def test_new_task_from_a_yaml_file_only(write_test_video, tmp_path, monkeypatch):
    from harness.core.paths import REPO_ROOT

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tinybench.yaml").write_text(NEW_TASK.format(base=REPO_ROOT / "tasks" / "_base_mcq.yaml"))
    root = tmp_path / "data"
    rows = [{"uid": "t1", "clip": "c1", "prompt": "Which colour?", "choices": ["gray", "pink"], "gold": "gray",
             "skill": "colour"},
            {"uid": "t2", "clip": "c2", "prompt": "How long?", "choices": ["2 s", "1 h", "1 min"], "gold": "1 h",
             "skill": "time"}]
    for row in rows:
        benchdata.video(write_test_video, root, f"clips/{row['clip']}.mp4")
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks))
    assert discover().names() == ["tinybench"]
    (pipeline,) = in_process("tinybench")
    samples = load_samples(pipeline.task, root)
    assert [s.answer for s in samples] == [0, 1] and samples[1].options == ("2 s", "1 h", "1 min")
    results = [pipeline.run(s) for s in samples]
    assert {r.status for r in results} <= ANSWERED
    assert set(summarize(results, ["skill"])["breakdowns"]["skill"]) == {"colour", "time"}
