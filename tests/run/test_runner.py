"""The Ray runner: decode workers → model actors, fault tolerance, timeouts, bad videos, determinism.

The model is the fixed-cost backbone (a sleep standing in for a GPU step, answers derived from the
decoded pixels), so these tests exercise the runner, not the tiny VLM.
"""

from collections import Counter
from pathlib import Path

import pytest
from faults import crashing, crashing_decoder, fragile_replacement

from harness.core.records import Sample
from harness.core.status import ANSWERED
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.model.specs import Component, ModelSpec
from harness.run.calls import run_order
from harness.run.config import RunnerConfig, RunStats
from harness.run.journal import Journal, read_journal
from harness.run.runner import Runner
from harness.run.workers import DecodeWorker, ModelWorker

TASK = get_task("needle")


def spec(step_s: float = 0.01, per_frame_s: float = 0.0, selector: Component = Component("uniform", {"n": 4})):
    return ModelSpec("fixed-cost-test", "runner tests", Component("fixed-cost", {"step_s": step_s,
                                                                                "per_frame_s": per_frame_s}), selector)


@pytest.fixture(scope="module")
def needle_samples() -> list[Sample]:
    return load_samples(TASK, limit=8)


def run(samples, config: RunnerConfig, model: ModelSpec | None = None, journal: Path | None = None,
        model_worker: type[ModelWorker] = ModelWorker, decode_worker: type[DecodeWorker] = DecodeWorker):
    results = []
    sink = Journal(journal) if journal else None

    def on_result(result):
        results.append(result)
        if sink:
            sink.append(result)

    try:
        stats = Runner(samples, model or spec(), TASK, None, config, on_result, model_worker, decode_worker).run()
    finally:
        if sink:
            sink.close()
    return results, stats


def predictions(results):
    return sorted((r.id, r.status, r.pred, r.frame_indices) for r in results)


def test_pipelined_run_matches_decoding_in_the_model_actor_on_one_worker(ray_cluster, needle_samples):
    piped, stats = run(needle_samples, RunnerConfig(workers=2, decode_workers=2, max_in_flight=3))
    inline, _ = run(needle_samples, RunnerConfig(workers=1, decode_in_model=True))
    assert isinstance(stats, RunStats) and stats.samples == 8 and stats.decode_actors == 2
    assert predictions(piped) == predictions(inline)
    assert {r.status for r in piped} <= ANSWERED and all(r.pred is not None for r in piped)
    assert 1 <= stats.peak_in_flight <= 3
    for r in piped:  # time and memory cover both halves of the split
        t = r.timings_s
        assert t["total"] == pytest.approx(t["decode_total"] + t["infer_total"]) and t["in_flight"] >= t["total"]
        assert r.peak_rss_mb > 0 and r.worker
    assert stats.decode_busy_s > 0 and stats.model_busy_s >= 8 * 0.01


def test_killed_model_actor_is_replaced_and_each_sample_journaled_once(ray_cluster, needle_samples, tmp_path):
    victim = needle_samples[2].id
    journal = tmp_path / "samples.jsonl"
    results, stats = run(needle_samples, RunnerConfig(workers=2), journal=journal,
                         model_worker=crashing(victim, 1, tmp_path / "tally"))
    lines = list(read_journal(journal))
    assert Counter(r.id for r in lines) == Counter(s.id for s in needle_samples)  # every sample exactly once
    crashed = next(r for r in lines if r.id == victim)
    assert crashed.status in ANSWERED and crashed.attempts == 2
    assert stats.retries == 1 and stats.replaced_workers == 1
    assert (tmp_path / "tally").read_text().count("attempt") == 2  # the actor really died once, then ran it
    clean, _ = run(needle_samples, RunnerConfig(workers=2))
    assert predictions(results) == predictions(clean)


def test_killed_decode_actor_is_replaced_and_each_sample_journaled_once(ray_cluster, needle_samples, tmp_path):
    # The driver never reads a decode result: the death reaches it through the model call that took its frames.
    victim = needle_samples[3].id
    journal = tmp_path / "samples.jsonl"
    results, stats = run(needle_samples, RunnerConfig(workers=2, decode_workers=2), journal=journal,
                         decode_worker=crashing_decoder(victim, tmp_path / "tally"))
    lines = list(read_journal(journal))
    assert Counter(r.id for r in lines) == Counter(s.id for s in needle_samples)
    # One attempt counted for the one death, on the victim's sample, whichever failure reached the driver first.
    assert {r.id: r.attempts for r in lines if r.attempts > 1} == {victim: 2}
    assert all(r.status in ANSWERED for r in lines)
    assert stats.retries == 1 and stats.replaced_workers == 1
    assert (tmp_path / "tally").read_text().count("attempt") == 2
    clean, _ = run(needle_samples, RunnerConfig(workers=2, decode_workers=2))
    assert predictions(results) == predictions(clean)


def test_a_replacement_that_dies_loading_is_replaced_again(ray_cluster, needle_samples, tmp_path):
    victim = needle_samples[1].id
    results, stats = run(needle_samples[:4], RunnerConfig(workers=1),
                         model_worker=fragile_replacement(victim, tmp_path / "tally"))
    assert sorted(r.id for r in results) == sorted(s.id for s in needle_samples[:4])
    assert all(r.status in ANSWERED for r in results) and stats.replaced_workers == 2
    assert len((tmp_path / "tally.actors").read_text().splitlines()) == 3


def test_sample_that_keeps_killing_its_worker_is_recorded_and_run_goes_on(ray_cluster, needle_samples, tmp_path):
    victim = needle_samples[0].id
    # Decoding in the model actor: the crash comes in `run` here, in `infer` in the test above.
    results, stats = run(needle_samples[:3], RunnerConfig(workers=2, max_retries=1, decode_in_model=True),
                         model_worker=crashing(victim, 99, tmp_path / "tally"))
    by_id = {r.id: r for r in results}
    assert len(results) == 3 and by_id[victim].status == "retries_exhausted" and by_id[victim].attempts == 2
    assert "worker died" in by_id[victim].error and stats.replaced_workers == 2
    assert all(r.status in ANSWERED for i, r in by_id.items() if i != victim)


def test_missing_and_corrupt_videos_do_not_stop_the_run(ray_cluster, needle_samples, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    good = needle_samples[:2]
    bad = [Sample(id="missing", task="needle", video=str(tmp_path / "nope.mp4"), question="q?",
                  options=("a", "b", "c", "d"), answer=0, duration_s=9999.0),
           Sample(id="corrupt", task="needle", video=str(corrupt), question="q?", options=("a", "b", "c", "d"),
                  answer=1)]
    results, stats = run([*bad, *good], RunnerConfig(workers=2))
    by_id = {r.id: r for r in results}
    assert (by_id["missing"].status, by_id["corrupt"].status) == ("missing", "decode_error")
    assert "nope.mp4" in by_id["missing"].error and not by_id["corrupt"].correct
    assert all(by_id[s.id].status in ANSWERED for s in good) and stats.samples == 4


def test_sample_over_the_timeout_is_recorded_and_its_worker_replaced(ray_cluster, needle_samples):
    short = next(s for s in needle_samples if s.duration_s == 32)
    long = next(s for s in needle_samples if s.duration_s == 128)
    # Every frame at 1 fps: 32 frames cost 1.6 s, 128 frames 6.4 s against a 4 s limit (margins for busy cores).
    model = spec(per_frame_s=0.05, selector=Component("uniform", {"fps": 1.0, "max_frames": 600}))
    results, stats = run([short, long, short], RunnerConfig(workers=1, sample_timeout_s=4.0), model)
    statuses = Counter((r.id, r.status) for r in results)
    assert statuses[(long.id, "timeout")] == 1 and "exceeded 4 s" in next(r.error for r in results if r.id == long.id)
    assert statuses[(short.id, "ok")] + statuses[(short.id, "unparsed")] == 2, [(r.status, r.error) for r in results]
    assert stats.replaced_workers == 1


def test_the_shortest_open_a_run_then_the_longest_go_first():
    samples = [Sample(id=f"s{d}", task="needle", video="v.mp4", question="q?", options=("a", "b"), answer=0,
                      duration_s=float(d)) for d in (30, 600, 60, 3600, 10, 120)]

    def durations(openers):
        return [s.duration_s for s in run_order(samples, openers)]
    assert durations(2) == [10, 30, 3600, 600, 120, 60]  # two openers (e.g. max_in_flight), shortest first
    assert durations(0) == [3600, 600, 120, 60, 30, 10]
    assert durations(99) == [10, 30, 60, 3600, 600, 120]  # at most half: the longest still go out early
