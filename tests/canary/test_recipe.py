"""The canary recipes (issue 13): the shipped checkpoints are the ones their manifests describe, and the recipes
still train (a few steps on a tiny bank, loss going down)."""

from __future__ import annotations

import json

import pytest

from harness.backbones.canary import CANARY_CHECKPOINT
from harness.canary.clip import CLIP_RECIPE_VERSION, ClipRecipe
from harness.canary.model import Widths
from harness.canary.recipe import RECIPE_VERSION, Recipe
from harness.canary.train import LEARNING_CURVE, MANIFEST, train, train_encoder, weight_hashes
from harness.methods.encoders import CANARY_CLIP

SMOKE = Recipe(widths=Widths(vision_hidden=64, hidden=64), bank_videos=2, bank_frames=8, bank_needles=294,
               stage1_steps=24, stage1_batch=16, stage1_lr=3e-3, curriculum=((0, 4), (2, 4)), stage2_batch=4,
               log_every=4, heldout_clips=2)


@pytest.mark.parametrize(("checkpoint", "version"), [(CANARY_CHECKPOINT, RECIPE_VERSION),
                                                    (CANARY_CLIP, CLIP_RECIPE_VERSION)], ids=["llava-ov", "clip"])
def test_shipped_weights_match_their_manifest(checkpoint, version):
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    assert manifest["recipe_version"] == version
    assert "model.safetensors" in manifest["sha256"]
    assert weight_hashes(checkpoint) == manifest["sha256"]


def test_the_bank_draws_labels_in_the_tasks_proportions():
    from collections import Counter

    from harness.canary.model import LABELS
    from harness.canary.vision import task_labels
    from harness.data.needle.questions import CATEGORIES

    labels = task_labels(3_000)
    per_label = Counter(labels.tolist())
    assert sorted(per_label) == list(range(len(LABELS)))  # every label present
    for pool in CATEGORIES.values():
        counts = [per_label[LABELS.index(label)] for label in pool]
        assert sum(counts) == 1_000 and max(counts) - min(counts) <= 1


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("canary")
    return out, train(out, SMOKE)


def test_recipe_trains_a_few_steps_and_the_loss_goes_down(smoke):
    out, manifest = smoke
    curve = [json.loads(line) for line in (out / LEARNING_CURVE).read_text().splitlines()]
    vision = [r["loss"] for r in curve if r["stage"] == "vision"]
    assert len(vision) == 6 and vision[-1] < vision[0]
    assert [r["stage"] for r in curve].count("answer") == 2 and curve[-1]["stage"] == "heldout"
    assert manifest["steps"] == {"vision": 24, "answer": 8}
    assert weight_hashes(out) == manifest["sha256"]


def test_the_checkpoint_loads_through_the_canary_backbone(smoke):
    from harness.backbones.canary import CanaryBackbone

    out, _ = smoke
    backbone = CanaryBackbone.load(checkpoint=str(out))
    assert backbone.name == "canary" and backbone.tokens_per_frame == 16
    assert CanaryBackbone.tokens_per_frame_for(checkpoint=str(out)) == 16


def test_shipped_canary_answers_when_the_needle_is_shown():
    """A small held-out set through the registry backbone: well above chance (25%) with the needle in the clip."""
    import numpy as np

    from harness.backbones.canary import CanaryBackbone
    from harness.canary.heldout import clip_accuracy

    backbone = CanaryBackbone.load()
    present = clip_accuracy(backbone, np.random.default_rng([7, 8, 1]), clips=24, frames=8, present=True)
    assert present >= 0.5, f"canary retrieval accuracy with the needle shown: {present:.2f}"


def test_clip_recipe_trains_a_few_steps(tmp_path):
    recipe = ClipRecipe(width=32, heads=2, bank_videos=2, bank_frames=8, bank_needles=72, steps=12, batch=16,
                        queries=8, log_every=4, heldout_clips=2)
    manifest = train_encoder(tmp_path, recipe)
    curve = [json.loads(line) for line in (tmp_path / LEARNING_CURVE).read_text().splitlines()]
    assert [r["stage"] for r in curve] == ["clip"] * 3 + ["heldout"]
    assert curve[2]["loss"] < curve[0]["loss"]
    assert manifest["steps"] == {"clip": 12} and weight_hashes(tmp_path) == manifest["sha256"]
    assert set(manifest["heldout"]) == {f"{m}_{q}" for m in ("auc", "first")
                                        for q in ("label", "question", "question+options")}


def test_shipped_canary_clip_ranks_the_needle_frame_first():
    """Through the registry encoder and the selectors' own relevance: a needle drawn over one frame of a fresh
    scene outscores the scene's other frames for its question."""
    import numpy as np

    from baselines.relevance import relevance
    from harness.canary.clip import needle_question
    from harness.canary.clips import MAX_TIME, haystack_video, with_needle
    from harness.canary.model import LABELS
    from harness.core.records import Frames

    rng = np.random.default_rng([7, 64])
    firsts = []
    for _ in range(8):
        sample, shown = needle_question(rng)
        times = np.sort(rng.choice(MAX_TIME, 32, replace=False))
        video, at = haystack_video(rng, times), int(rng.integers(32))
        video = with_needle(rng, video, at, LABELS[min(shown)])
        scores = relevance("canary-clip", sample, Frames(tuple(times.tolist()), tuple(map(float, times)), video),
                           "question+options")
        firsts.append(int(np.argmax(scores)) == at)
    assert sum(firsts) >= 6, firsts
