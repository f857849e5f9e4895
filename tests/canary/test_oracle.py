"""The canary as the harness's end-to-end correctness oracle (issue 13): on a small retrieval exam rendered by the
needle task itself, the trained canary answers where the needle reached it, and falls to chance where the visual
path carries nothing (blind) or carries it scrambled — the bug class (a wrong reshape, tokens mixed across frames)
that every random-weight model passes. Deterministic: fixed exam seed, shipped weights, greedy answers.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import yaml

from harness.core.paths import REPO_ROOT
from harness.core.records import EncodedVideo, VisualSequence
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.methods.reduction import REDUCERS, ReductionContext
from harness.model.specs import MODELS, Component, ModelSpec
from harness.run.config import RunnerConfig
from harness.run.pipeline import Pipeline
from harness.run.runner import Runner

# 24 retrieval questions over 32- and 128-frame videos, its own seed (not the needle task's 0 or the exam's 13)
SMALL_EXAM = {"seed": 1313, "lengths": [32, 128], "per_cell": 12, "kinds": ["retrieval"]}


@dataclass(frozen=True)
class Scramble:
    """Test-only reducer: every value of the visual tokens moved by one fixed permutation across frames, tokens and
    channels (what a wrong `view` of [T, M, C] does); the rows and norms stay plausible, the content does not."""

    name: ClassVar[str] = "scramble"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = True

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        whole = VisualSequence.whole(encoded)
        flat = whole.tokens.flatten()
        order = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))
        return VisualSequence(flat[order.to(flat.device)].reshape(whole.tokens.shape), whole.rows, encoded)


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """The small exam as a task (`needle_oracle`), its samples, and the env that finds it."""
    root = tmp_path_factory.mktemp("oracle")
    tasks = root / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    data = yaml.safe_load((tasks / "needle_exam.yaml").read_text())
    data.update(task="needle_oracle", description="the canary oracle's small retrieval exam")
    data["dataset"].update(root=str(root / "data"), generator_args=SMALL_EXAM)
    (tasks / "needle_oracle.yaml").write_text(yaml.safe_dump(data))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_TASKS_DIR", str(tasks))
        task = get_task("needle_oracle")
        yield task, load_samples(task)


def run_in_process(spec: ModelSpec, exam):
    task, samples = exam
    pipeline = Pipeline(spec, task)
    return [pipeline.run(sample) for sample in samples]


def accuracy(results) -> float:
    return sum(r.correct for r in results) / len(results)


@pytest.fixture(scope="module")
def one_fps(exam):
    return run_in_process(MODELS.get("canary-uniform-1fps"), exam)


def test_canary_answers_retrieval_where_the_needle_was_retained(one_fps):
    assert all(r.status == "ok" for r in one_fps)
    retained = [r for r in one_fps if r.needle_retained]
    assert len(retained) == len(one_fps)  # 1 fps over ≤ 128 frames: every 2-frame needle is sampled
    assert accuracy(retained) >= 0.8, [(r.id, r.raw_output, r.gold) for r in retained if not r.correct]


def test_blind_canary_falls_to_chance(exam, one_fps):
    blind = run_in_process(MODELS.get("canary-blind"), exam)
    assert all(r.visual_tokens == 0 for r in blind)
    assert accuracy(blind) <= 0.45 < accuracy(one_fps)


def test_a_scrambled_token_path_falls_to_chance(exam, one_fps):
    base = MODELS.get("canary-uniform-1fps")
    spec = ModelSpec("canary-scramble", "test-only: scrambled visual tokens", base.backbone, base.selector,
                     Component("scramble"), base.answer)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(REDUCERS._entries, "scramble", Scramble)
        scrambled = run_in_process(spec, exam)
    assert all(r.needle_retained for r in scrambled)  # the frames reached the model; their content did not
    assert [r.visual_tokens for r in scrambled] == [r.visual_tokens for r in one_fps]
    assert accuracy(scrambled) <= 0.45 < accuracy(one_fps)


def test_one_and_two_workers_give_identical_canary_predictions(ray_cluster, exam, one_fps):
    task, samples = exam
    spec = MODELS.get("canary-uniform-1fps")
    by_workers = {}
    for workers in (1, 2):
        results: list = []
        Runner(samples, spec, task, None, RunnerConfig(workers=workers), results.append).run()
        by_workers[workers] = {r.id: r.raw_output for r in results}
    assert by_workers[1] == by_workers[2] == {r.id: r.raw_output for r in one_fps}
