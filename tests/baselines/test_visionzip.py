"""VisionZip: dominant tokens by received attention, contextual tokens merged by key similarity."""

import numpy as np
import torch

from baselines.visionzip import VisionZip, split_budget, zip_frame
from harness.core.records import Frames, FrameSelection, Sample
from harness.methods.reduction import ReductionContext


def test_official_split():
    assert split_budget(576, 64 / 576, 10 / 64) == (54, 10)  # LLaVA-1.5: 54 dominant + 10 contextual
    assert split_budget(16, 0.25, 10 / 64) == (3, 1)


def test_dominant_and_contextual_tokens():
    m, c = 8, 4
    tokens = torch.arange(m * c, dtype=torch.float32).reshape(m, c)
    received = torch.tensor([0.1, 0.9, 0.0, 0.0, 0.8, 0.0, 0.0, 0.2])
    # rest = [0, 2, 3, 5, 6, 7]; 2 targets at rest[0] = 0 and rest[3] = 5; keys send 2, 3 → 0 and 6, 7 → 5
    keys = torch.tensor([[1.0, 0], [0, 0], [1, 0.1], [1, 0.2], [0, 0], [0, 1], [0.1, 1], [0.2, 1]])
    top, out = zip_frame(tokens, received, keys, dominant=2, contextual=2)
    assert top.tolist() == [1, 4]
    assert torch.equal(out[:2], tokens[[1, 4]])
    assert torch.allclose(out[2], tokens[0] + tokens[[2, 3]].mean(0))
    assert torch.allclose(out[3], tokens[5] + tokens[[6, 7]].mean(0))


def context(backbone, n=2):
    frames = Frames(tuple(range(n)), tuple(float(i) for i in range(n)),
                    np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8))
    sample = Sample(id="s", task="t", video="v.mp4", question="q?", options=("a", "b"), answer=0)
    return ReductionContext(sample, FrameSelection("uniform", frames.indices), frames, backbone)


def test_tiny_attention_matches_eager_reference():
    from harness.backbones import BACKBONES

    backbone = BACKBONES.get("tiny").load()
    ctx = context(backbone, n=3)
    received, keys = backbone.vision_attention(ctx.frames)
    assert received.shape == (3, backbone.tokens_per_frame) and keys.shape[:2] == (3, backbone.tokens_per_frame)
    # reference: the SigLIP tower's own attention weights (eager), last layer, mean over heads and queries
    tower = BACKBONES.get("tiny").load().model.model.vision_tower
    tower.set_attn_implementation("eager")
    pixels = backbone._video_pixels(ctx.frames)[0]
    with torch.inference_mode():
        weights = tower(pixel_values=pixels, output_attentions=True).attentions[-1]
    expected = backbone.model.model.apply_pooling(weights.mean(dim=(1, 2))[..., None])[..., 0]
    assert torch.allclose(received, expected, atol=1e-5)
    out = VisionZip(retention=0.25).reduce(backbone.encode_frames(ctx.frames), ctx)
    assert out.tokens.shape == (3 * 4, backbone.hidden_size) and out.rows is None
