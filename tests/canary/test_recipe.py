"""The canary recipe (issue 13): the shipped checkpoint is the one its manifest describes, and the recipe still
trains (a few steps on a tiny bank, loss going down)."""

from __future__ import annotations

import json

import pytest

from harness.backbones.canary import CANARY_CHECKPOINT
from harness.canary.model import Widths
from harness.canary.recipe import RECIPE_VERSION, Recipe
from harness.canary.train import LEARNING_CURVE, MANIFEST, train, weight_hashes

SMOKE = Recipe(widths=Widths(vision_hidden=64, hidden=64), bank_videos=2, bank_frames=8, bank_needles=72,
               stage1_steps=24, stage1_batch=16, stage1_lr=3e-3, curriculum=((0, 4), (2, 4)), stage2_batch=4,
               log_every=4, heldout_clips=2)


def test_shipped_weights_match_their_manifest():
    manifest = json.loads((CANARY_CHECKPOINT / MANIFEST).read_text())
    assert manifest["recipe_version"] == RECIPE_VERSION
    assert "model.safetensors" in manifest["sha256"]
    assert weight_hashes(CANARY_CHECKPOINT) == manifest["sha256"]


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
