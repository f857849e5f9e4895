"""Budget-matched uniform sampling: N lands within one frame of the visual-token target."""

import pytest

from baselines.uniform import Uniform, frames_for_budget, linspace_indices, vilamp_budget
from harness.core.records import VideoMeta
from harness.methods.selection import SELECTORS
from harness.model.specs import MODELS


def meta(seconds: int, fps: float = 30.0) -> VideoMeta:
    return VideoMeta(path="x.mp4", num_frames=int(seconds * fps), fps=fps, width=64, height=64)


@pytest.mark.parametrize("tpf", [16, 196])
@pytest.mark.parametrize("target", [1, 17, 100, 781, 6841, 10_000])
def test_budget_lands_within_one_frame(target, tpf):
    n = frames_for_budget(target, tpf, 1, total=100_000)
    tokens = n * tpf + 1
    assert n >= 1
    assert abs(tokens - target) <= tpf / 2 or (n == 1 and target < tpf + 1)  # nearest N, never 0 frames
    assert abs(tokens - target) <= abs((n + 1) * tpf + 1 - target)
    assert n == 1 or abs(tokens - target) <= abs((n - 1) * tpf + 1 - target)


def test_budget_is_clamped_to_the_video():
    assert frames_for_budget(10_000, 16, 1, total=40) == 40


def test_vilamp_budget_is_vilamps_token_count():
    # 300 s at 1 fps → N = 300 frames, K = 32: 16·32 + 268 + 1 (notes/vilamp.md §2.3)
    assert vilamp_budget(meta(300), 16) == 16 * 32 + 268 + 1
    # capped at 600 frames; the 7B's count is 6,841 (196·32 + 568 + 1)
    assert vilamp_budget(meta(3600), 196) == 6841
    # fewer frames than K: every frame is a keyframe
    assert vilamp_budget(meta(20), 16) == 16 * 20 + 1


@pytest.mark.parametrize("seconds", [20, 64, 300, 3600])
def test_vilamp_matched_plan_is_within_one_frame(seconds):
    video = meta(seconds)
    selector = Uniform(budget="vilamp", tokens_per_frame=16)
    plan = selector.plan(video)
    target = vilamp_budget(video, 16)
    assert abs(len(plan) * 16 + 1 - target) <= 16
    assert plan == linspace_indices(video.num_frames, len(plan))  # lmms-eval's linspace convention


def test_fixed_budget_plan():
    assert len(Uniform(budget=801, tokens_per_frame=16).plan(meta(300))) == 50


def test_budget_mode_needs_tokens_per_frame():
    with pytest.raises(ValueError, match="tokens_per_frame"):
        Uniform(budget="vilamp")
    with pytest.raises(ValueError, match="budget must be"):
        Uniform(budget="half", tokens_per_frame=16)


@pytest.mark.parametrize("name", ["tiny-uniform-vilamp-budget", "llava-ov-tiny-uniform-vilamp-budget",
                                  "llava-video-tiny-uniform-vilamp-budget"])
def test_spec_tokens_per_frame_is_the_backbones(name):
    from harness.backbones import BACKBONES

    spec = MODELS.get(name)
    selector = SELECTORS.get(spec.selector.name)(**spec.selector.args)
    assert selector.tokens_per_frame == BACKBONES.get(spec.backbone.name).load(**spec.backbone.args).tokens_per_frame
