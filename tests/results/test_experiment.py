"""The statistics a paper's comparison needs: McNemar's exact test, the paired cluster bootstrap, the Pareto
frontier, the specs × tasks table."""

from __future__ import annotations

import math

import pytest

from harness.core.records import SampleResult
from harness.results.experiment import mcnemar_exact, method_of, paired_test, pareto_front, task_table


def results(correct: list[bool], video_of=lambda i: f"v{i // 2}") -> list[SampleResult]:
    return [SampleResult(id=f"q{i}", task="t", model="m", status="ok", gold=0, pred=0 if c else 1, correct=c,
                         video_id=video_of(i)) for i, c in enumerate(correct)]


def test_mcnemar_exact_matches_the_binomial_tail():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    # 10 discordant pairs all one way: 2 · 0.5^10
    assert math.isclose(mcnemar_exact(10, 0), 2 / 1024)
    # b=1, c=9: 2 · (C(10,0) + C(10,1)) / 2^10
    assert math.isclose(mcnemar_exact(1, 9), 2 * 11 / 1024)


def test_paired_test_on_the_same_samples():
    reference = results([True, False, False, True, False, False, True, False] * 5)
    candidate = results([True, True, False, True, True, False, True, True] * 5)  # right wherever the reference is
    t = paired_test(candidate, reference)
    assert t.n == 40 and t.only_candidate == 15 and t.only_reference == 0
    assert math.isclose(t.difference, 37.5)
    assert t.p_value < 1e-4 and t.ci_low > 0 < t.ci_high
    again = paired_test(candidate, reference)
    assert (again.ci_low, again.ci_high) == (t.ci_low, t.ci_high)  # seeded: the same interval every time
    same = paired_test(reference, reference)
    assert same.difference == 0 and same.p_value == 1.0 and same.ci_low == same.ci_high == 0


def test_the_bootstrap_resamples_clusters_not_questions():
    """Questions on one video move together: on video A (20 questions) the candidate is right and the reference
    wrong everywhere, on video B both are right. Two clusters are two observations (the interval spans 0-100);
    the same answers on 40 independent videos give a narrow interval around the same 50 points."""
    candidate = [True] * 40
    reference = [False] * 20 + [True] * 20
    clustered = paired_test(results(candidate, lambda i: f"v{i // 20}"), results(reference, lambda i: f"v{i // 20}"))
    independent = paired_test(results(candidate, lambda i: f"v{i}"), results(reference, lambda i: f"v{i}"))
    assert clustered.difference == independent.difference == 50.0
    assert (clustered.ci_low, clustered.ci_high) == (0.0, 100.0)
    assert 25 < independent.ci_low < 50 < independent.ci_high < 75


def test_paired_test_needs_shared_samples():
    with pytest.raises(ValueError, match="share no sample ids"):
        paired_test(results([True]), [SampleResult(id="other", task="t", model="m", status="ok", gold=0)])


def test_pareto_front():
    points = [(100, 50.0), (200, 60.0), (150, 40.0), (400, 60.0), (300, 70.0), (50, 20.0)]
    assert pareto_front(points) == [5, 0, 1, 4]  # by cost; (150, 40), (400, 60) are dominated


def test_method_of_and_the_task_table():
    assert method_of("tiny-uniform@selector.n=8") == "tiny-uniform" and method_of("vilamp-tf") == "vilamp-tf"
    assert method_of("tiny-uniform@selector.budget=705") == "tiny-uniform (budget-matched)"
    summary = lambda model, task, acc, extra={}: {  # noqa: E731
        "config": {"model": model, "task": task},
        "metrics": {"accuracy": acc, "accuracy_stderr": 2.0, **extra},
        "cost": {"visual_tokens_mean": 257.0, "latency_p50_s": 0.1}}
    kinds = {"breakdowns": {"kind": {"retrieval": {"accuracy": 75.0, "n": 4}, "counting": {"accuracy": 25.0, "n": 4}}}}
    tasks, rows = task_table([summary("a", "needle", 50.0, kinds), summary("a", "mlvu_mini", 40.0, {"mavg": 45.0}),
                              summary("b", "needle", 60.0)])
    assert tasks == ["needle", "mlvu_mini"]
    assert rows[0] == {"model": "a", "needle": "50.0 ± 2.0 · 257 tok · 0.10 s", "needle: counting": "25.0 (4)",
                       "needle: retrieval": "75.0 (4)", "mlvu_mini": "45.0 · 257 tok · 0.10 s"}
    assert rows[1] == {"model": "b", "needle": "60.0 ± 2.0 · 257 tok · 0.10 s"}
