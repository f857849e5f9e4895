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
