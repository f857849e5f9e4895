import math

import pytest

from harness.core.records import SampleResult
from harness.scoring.metrics import clustered_stderr, summarize


def result(i, correct, status="ok", kind="a", video="v0", gold=0):
    return SampleResult(id=str(i), task="t", model="m", status=status, gold=gold, pred=0 if correct else 1,
                        correct=correct, video_id=video, breakdown={"kind": kind})


def test_summary_accuracy_breakdowns_and_failures():
    results = [result(0, True, kind="a"), result(1, False, kind="a"), result(2, True, kind="b"),
               result(3, False, status="unparsed", kind="b"), result(4, False, status="decode_error", kind="b")]
    s = summarize(results, ["kind"])
    assert s["n"] == 5 and s["accuracy"] == pytest.approx(40.0)
    assert s["accuracy_answered"] == pytest.approx(50.0)  # the decode failure left out
    assert s["breakdowns"]["kind"] == {"a": {"accuracy": 50.0, "n": 2}, "b": {"accuracy": pytest.approx(100 / 3), "n": 3}}
    assert s["parse_failure_rate"] == pytest.approx(0.2) and s["failure_rate"] == pytest.approx(0.2)
    assert s["status_counts"] == {"decode_error": 1, "ok": 3, "unparsed": 1}


def test_unlabelled_samples_are_not_scored():
    s = summarize([result(0, False, gold=None), result(1, True)], [])
    assert s["n"] == 2 and s["n_scored"] == 1 and s["accuracy"] == 100.0


def test_clustered_stderr_matches_iid_when_each_cluster_is_one_sample():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    n, mean = len(values), sum(values) / len(values)
    iid = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    assert clustered_stderr(values, [str(i) for i in range(n)]) == pytest.approx(iid)
    # perfectly correlated pairs: the clustered error is larger than the iid one
    assert clustered_stderr(values[:4] * 2, ["a", "b", "c", "d"] * 2) > clustered_stderr(values[:4] * 2, list("abcdefgh"))


def kept(i, correct, retained, video, kind="a"):
    return SampleResult(id=str(i), task="t", model="m", status="ok", gold=0, pred=0 if correct else 1,
                        correct=correct, video_id=video, breakdown={"kind": kind}, needle_retained=retained)


def test_accuracy_split_by_needle_retention_with_clustered_stderr():
    results = [kept(0, True, True, "v0"), kept(1, True, True, "v0"), kept(2, False, True, "v1"),
               kept(3, False, False, "v2", kind="b"), kept(4, True, False, "v3", kind="b"),
               kept(5, False, None, "v4"), result(6, False, gold=None)]  # unknown and unlabelled: in neither side
    s = summarize(results, ["kind"])
    assert (s["n_needle_retained"], s["n_needle_lost"]) == (3, 2)
    assert s["accuracy_needle_retained"] == pytest.approx(200 / 3) and s["accuracy_needle_lost"] == 50.0
    assert s["accuracy_needle_retained_stderr"] == pytest.approx(100 * clustered_stderr([1, 1, 0], ["v0", "v0", "v1"]))
    assert s["accuracy_needle_lost_stderr"] == pytest.approx(100 * clustered_stderr([0, 1], ["v2", "v3"]))
    assert s["accuracy"] == pytest.approx(50.0) and s["n_scored"] == 6  # the headline is untouched
    by_kind = s["needle_breakdowns"]["kind"]
    assert (by_kind["a"]["n_needle_retained"], by_kind["a"]["n_needle_lost"]) == (3, 0)
    assert by_kind["a"]["accuracy_needle_lost"] is None and by_kind["a"]["accuracy_needle_lost_stderr"] is None
    assert by_kind["b"]["accuracy_needle_lost"] == 50.0 and by_kind["b"]["accuracy_needle_retained"] is None


def test_no_needle_split_where_no_sample_knows_its_needle():
    s = summarize([result(0, True), result(1, False)], ["kind"])
    assert not any("needle" in key for key in s)
