"""Run summaries on hand-made results: cost figures, breakdown cost, protocol versions, markdown."""

import copy
import dataclasses
import json

import pytest

from harness.core.records import SampleResult
from harness.data.tasks import MetricSpec
from harness.evaluate import EvalRequest, resolve
from harness.results.summary import (
    breakdown_cost,
    build_summary,
    cost,
    numeric_means,
    protocol,
    render_markdown,
    stage_costs,
    table_row,
    ttft_s,
)
from harness.scoring.metrics import clustered_stderr

TIMINGS = {"video_decode": 0.5, "select": 0.1, "vision": 0.2, "reduce": 0.05, "llm_prefill": 0.15,
           "llm_decode": 1.0}


def result(i: int, status: str = "ok", **fields) -> SampleResult:
    base = dict(id=f"s{i}", task="needle", model="m", status=status, gold=0, pred=0, correct=True,
                n_frames_decoded=8, frame_indices=tuple(range(4)), visual_tokens=100, text_tokens=30,
                generated_tokens=10, peak_rss_mb=100.0 + i, needle_retained=i % 2 == 0,
                timings_s={**TIMINGS, "total": 2.0 + i}, breakdown={"length_bucket": "32" if i < 2 else "128"})
    return SampleResult(**{**base, **fields})


def test_cost_figures():
    results = [result(i) for i in range(4)] + [result(4, status="decode_error", timings_s={"total": 0.1},
                                                      n_frames_decoded=0, frame_indices=())]
    c = cost(results, wall_s=10.0)
    assert ttft_s(results[0]) == pytest.approx(1.0)  # every stage before the first token, not decode
    assert c["ttft_mean_s"] == pytest.approx(1.0) and c["ttft_p95_s"] == pytest.approx(1.0)
    assert c["samples_per_s"] == pytest.approx(0.5) and c["frames_per_s"] == pytest.approx(3.2)
    assert c["frames_used_per_s"] == pytest.approx(1.6)
    assert c["latency_p50_s"] == pytest.approx(3.0) and c["latency_max_s"] == pytest.approx(5.0)
    assert c["decode_tokens_per_s"] == pytest.approx(10.0)  # 40 generated tokens over 4 s of decoding
    assert (c["text_tokens_mean"], c["generated_tokens_mean"], c["visual_tokens_mean"]) == (30, 10, 100)
    assert c["peak_memory_mb"] == 104 and c["peak_memory_mean_mb"] == pytest.approx(102.0)
    assert c["needle_retention"] == pytest.approx(0.5)


def test_throughput_of_a_resumed_run_counts_only_the_samples_run_in_its_wall_time():
    results = [result(i) for i in range(4)]
    c = cost(results, wall_s=10.0, timed=results[3:])  # 3 samples came from the journal of an earlier session
    assert c["samples_per_s"] == pytest.approx(0.1) and c["frames_per_s"] == pytest.approx(0.8)
    assert c["frames_used_per_s"] == pytest.approx(0.4)
    assert c["latency_p50_s"] == pytest.approx(3.5)  # per-sample figures still cover every result


def test_new_numeric_fields_are_summarised_generically():
    extended = dataclasses.make_dataclass("Extended", [("x_new_count", int, 0)], bases=(SampleResult,), frozen=True)
    results = [extended(**dataclasses.asdict(result(i)), x_new_count=i) for i in range(3)]
    means = numeric_means(results)
    assert means["x_new_count_mean"] == 1.0
    assert "visual_tokens_mean" not in means and "gold_mean" not in means  # covered by `cost` / not a cost
    assert "x_new_count_mean" not in numeric_means([result(0)])


def test_breakdown_cost_per_value():
    by = breakdown_cost([result(i) for i in range(4)], ["length_bucket"])["length_bucket"]
    assert set(by) == {"32", "128"}
    assert by["32"]["n"] == 2 and by["32"]["needle_retention"] == 0.5
    assert by["128"]["latency_mean_s"] == pytest.approx(4.5) and by["128"]["peak_memory_mean_mb"] == 102.5


def test_protocol_versions_follow_the_prompt_text():
    config = resolve(EvalRequest(task="needle", model="tiny-uniform")).config
    first = protocol(config)
    assert first["sampler"]["args"] == {"n": 16} and first["sampler"]["code_sha"]
    assert first["extractor"]["code_sha"] and first["backbone"]["name"] == "tiny"
    changed = copy.deepcopy(config)
    changed["task_spec"]["prompts"][config["prompt_profile"]]["user"] += " Think."
    assert protocol(changed)["prompt"]["sha"] != first["prompt"]["sha"]
    assert protocol(changed)["extractor"] == first["extractor"]


CONFIG = {"task": "needle", "model": "m", "task_version": 1, "prompt_profile": "p", "extractor": "mcq_letter",
          "task_spec": {"prompts": {"p": {"user": "q"}}}, "model_spec": {}}


def test_stage_costs_are_means_over_the_answered_samples():
    results = [result(i) for i in range(4)] + [result(4, status="model_error", timings_s={"vision": 9.0})]
    assert stage_costs(results) == pytest.approx({**TIMINGS, "total": 3.5})
    assert list(stage_costs(results)) == sorted(stage_costs(results))


@dataclasses.dataclass
class _Stats:  # stands in for the runner's RunStats: any dataclass
    retries: int = 1
    statuses: dict = dataclasses.field(default_factory=lambda: {"ok": 4})


def test_summary_json_layout_with_task_metrics_runner_and_submission():
    results = [result(i, breakdown={"task_type": "count" if i else "order"}, correct=i != 1) for i in range(4)]
    metric = MetricSpec(name="mavg", breakdown=("task_type",), macro_over="task_type")
    origin = {"versions": {"python": "3"}, "protocol": {"task_version": 1}}
    summary = build_summary(results, metric, 10.0, CONFIG, timed=results[2:], stats=_Stats(), origin=origin,
                            submission_file="submission.json")
    data = summary.to_json()
    assert list(data) == ["config", "versions", "protocol", "metrics", "cost", "breakdown_cost", "runner"]
    assert data["versions"] == {"python": "3"} and data["config"] == CONFIG
    m = data["metrics"]
    assert m["accuracy"] == 75.0 and m["breakdowns"]["task_type"]["count"] == {"accuracy": 100 * 2 / 3, "n": 3}
    assert m["mavg"] == pytest.approx((100 + 100 * 2 / 3) / 2) and (m["mavg_over"], m["mavg_groups"]) == ("task_type", 2)
    assert m["submission_file"] == "submission.json" and "submission_file" not in summary.metrics
    assert data["cost"] == {**cost(results, 10.0, results[2:]),
                            **{f"stage_{k}_mean_s": v for k, v in stage_costs(results).items()}}
    assert data["cost"]["stage_llm_decode_mean_s"] == 1.0 and data["cost"]["samples_per_s"] == pytest.approx(0.2)
    assert data["breakdown_cost"] == breakdown_cost(results, ["task_type"])
    assert data["runner"] == {"retries": 1, "statuses": {"ok": 4}}
    plain = build_summary(results, MetricSpec(breakdown=("task_type",)), 10.0, CONFIG, origin=origin).to_json()
    assert "runner" not in plain and "mavg" not in plain["metrics"] and "submission_file" not in plain["metrics"]


def test_markdown_has_cost_columns_and_breakdowns():
    summary = build_summary([result(i) for i in range(4)], MetricSpec(breakdown=("length_bucket",)), 10.0, CONFIG)
    text = render_markdown(summary)
    assert "ttft_mean_s" in text and "latency_mean_s" in text and "## accuracy by length_bucket" in text
    assert "| 32 | 100.0 | 2 | 0.5 |" in text
    assert "mean seconds per stage: llm_decode 1.000" in text


def test_accuracy_split_by_needle_retention_in_json_table_and_markdown():
    results = [result(i, correct=i != 2, pred=int(i == 2), video_id=f"v{i}") for i in range(4)]  # kept: s0, s2
    summary = build_summary(results, MetricSpec(breakdown=("length_bucket",)), 10.0, CONFIG)
    m = summary.to_json()["metrics"]
    assert (m["accuracy_needle_retained"], m["n_needle_retained"]) == (50.0, 2)
    assert (m["accuracy_needle_lost"], m["n_needle_lost"]) == (100.0, 2)
    assert m["accuracy_needle_retained_stderr"] == pytest.approx(100 * clustered_stderr([1.0, 0.0], ["v0", "v2"]))
    assert m["accuracy_needle_lost_stderr"] == 0.0  # both right
    assert m["accuracy"] == 75.0 and m["breakdowns"]["length_bucket"]["32"] == {"accuracy": 100.0, "n": 2}
    row = table_row(summary.to_json())
    assert {k: row[k] for k in row if "needle_" in k and k != "needle_retention"} == {
        "acc_needle_retained": 50.0, "stderr_needle_retained": round(m["accuracy_needle_retained_stderr"], 2),
        "n_needle_retained": 2, "acc_needle_lost": 100.0, "stderr_needle_lost": 0.0, "n_needle_lost": 2}
    text = render_markdown(summary)
    assert "| acc_needle_retained | stderr_needle_retained | n_needle_retained | acc_needle_lost |" in text
    # per breakdown value, after its cost columns: s2 (retained, wrong) and s3 (lost, right) are the 128-frame ones
    assert "| 128 | 50.0 | 2 | 0.5 | 100.0 | 4.5 | 102.5 | 0.0 | 1 | 100.0 | 1 |" in text
    assert "| 32 | 100.0 | 2 | 0.5 | 100.0 | 2.5 | 100.5 | 100.0 | 1 | 100.0 | 1 |" in text


def test_an_empty_side_is_blank_and_summaries_still_compare_equal():
    results = [result(i, needle_retained=True) for i in range(3)]
    summary = build_summary(results, MetricSpec(), 10.0, CONFIG)
    m = summary.to_json()["metrics"]
    assert m["n_needle_lost"] == 0 and m["accuracy_needle_lost"] is None
    assert json.loads(json.dumps(m)) == m  # None, not NaN: a resumed run's summary equals the uninterrupted one
    row = table_row(summary.to_json())
    assert (row["acc_needle_lost"], row["stderr_needle_lost"], row["n_needle_retained"]) == ("", "", 3)


def test_no_needle_columns_for_a_task_without_evidence_spans():
    results = [result(i, needle_retained=None) for i in range(3)]
    summary = build_summary(results, MetricSpec(breakdown=("length_bucket",)), 10.0, CONFIG)
    assert not [k for k in summary.metrics if "needle" in k]
    assert not [k for k in table_row(summary.to_json()) if "needle" in k and k != "needle_retention"]
    assert "acc_needle" not in render_markdown(summary)
