"""The 7B code paths on the meta device (issue 18): every full-size spec's own pipeline (harness.run.pipeline: decode,
selection, the backbone's visual path and hooks, the reducer, the LLM prefill) runs on its full-size backbone built
without weights (harness.cost.meta), and the prefill follows the spec's budget and the full-size config: input length
= visual tokens + text tokens, hidden width, logits over the full vocabulary, and a KV cache of every layer with the
full KV heads and head size, as long as what each layer kept.

A meta tensor has no values, so a step that chooses by value cannot run. The meta rules answer the plain selection
ops themselves with a fixed choice of the right size (the first indices; harness.cost.meta.MetaValues), and the
ops answered so are checked per reducer (FIXED_OPS). Steps that read values any other way are replaced here by a
fixed choice of the right size, each in FIXED_CHOICES with why; everything else is the harness' own code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from videos import write_video

import baselines.adardkey
import baselines.divprune
import baselines.fastvid
import baselines.flashvid
import baselines.relevance
import baselines.vidcom2
import harness.backbones.framefusion
import harness.vilamp.selector
from baselines.apportion import largest_remainder
from baselines.uniform import linspace_indices
from harness.backbones.qwen25vl import Qwen25VLBackbone
from harness.core.config import ConfigError
from harness.core.records import Frames, FrameSelection, LlmFuse, LlmPrune, Sample
from harness.core.status import ANSWERED
from harness.cost.architectures import ENCODERS, FULL_SIZE, architecture
from harness.cost.meta import VILAMP_COMPOSER, DataDependent, MetaVideoModel, meta_backbone, meta_clip, meta_values
from harness.data.tasks import get_task
from harness.methods.reduction import InLlmReducer
from harness.model.budget import budget
from harness.model.preflight import build_methods
from harness.model.specs import MODELS
from harness.run.pipeline import Pipeline
from harness.vilamp.model import ViLAMPBackbone

FRAME_SIZE = (448, 252)  # a 16:9 decode size; Qwen2.5-VL: 9×16 merged tokens a frame pair, 12 attention windows
SHORT, LONG = 32, 128  # seconds of 1 fps video for the specs whose frames depend on the video
QUESTION, OPTIONS = "What happens in the video?", ("one", "two", "three", "four")


def full_size(name: str) -> bool:
    spec = MODELS.get(name)
    if spec.name != name:  # an alias
        return False
    try:
        architecture(spec)
    except ConfigError:
        return False
    return True


def cases() -> list:
    """Each full-size spec once, on a video with more 1 fps candidates than it keeps (one frame a second), and a
    spec whose frames depend on the video (fps, DKS, a ViLAMP-matched budget) on a short and (`slow`: ~3 s a case)
    a long one; ViLAMP also with the official code's other composer (which its checkpoint has is inferred:
    harness.cost.meta)."""
    out = []
    for name in sorted(filter(full_size, MODELS.names())):
        planned = budget(MODELS.get(name))
        if planned is None:
            out += [pytest.param(name, SHORT, VILAMP_COMPOSER, id=f"{name}@{SHORT}s"),
                    pytest.param(name, LONG, VILAMP_COMPOSER, id=f"{name}@{LONG}s", marks=pytest.mark.slow)]
        else:
            out.append(pytest.param(name, planned.frames + SHORT, VILAMP_COMPOSER, id=name))  # candidates > picks
    return [*out, pytest.param("vilamp", LONG, "single_token", id=f"vilamp[single_token]@{LONG}s")]


# ---------------------------------------------------------------- fixed choices (module docstring)

CLIPS: dict[str, object] = {}  # the selectors' CLIP encoders at full size on meta, by ENCODERS name (`patched`)


def fixed_relevance(encoder: str, sample, frames: Frames, query: str = "question"):
    """Fixed unit embeddings and relevance, from which the selector's own rule (top-k, AKS, BOLT, AdaRD-Key, key
    clips) picks. (The CLIP ViT-B/32 itself runs at full size on meta in the dks-stream specs.)"""
    rng = np.random.default_rng(len(frames))
    dim = CLIPS[encoder].dim
    unit = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((len(frames), dim))).float(), dim=-1)
    return unit, rng.uniform(0.1, 0.3, len(frames))


def fixed_dks(self, sample, indices, frame_emb, encoder) -> FrameSelection:
    """K keyframes evenly spread over the frames, after the encoder's text tower ran on the question."""
    assert tuple(frame_emb.shape) == (len(indices), encoder.dim)
    assert tuple(encoder.embed_text(sample.question).shape) == (encoder.dim,)
    keyframes = tuple(indices[i] for i in linspace_indices(len(indices), self.k))
    return FrameSelection(self.name, tuple(indices) if self.keep_non_keyframes else keyframes, keyframes)


def even_segments(features: torch.Tensor, min_segments: int, tau: float) -> list[int]:
    return [len(part) for part in np.array_split(np.arange(len(features)), min(min_segments, len(features)))]


def first_k(features: torch.Tensor, k: int, weight: torch.Tensor | None = None) -> torch.Tensor:
    return torch.arange(max(1, min(k, len(features))))


def first_per_frame(tokens, received, offset, selected, merged, threshold, selection):
    f, m, _ = tokens.shape
    keep = selected + merged
    out = [row.float() for t in range(f) for row in tokens[t, :keep]]
    return out, [(offset + t) * m + j for t in range(f) for j in range(keep)]


def equal_budgets(uniqueness, per_frame, keep_ratio, temperature) -> list[int]:
    frames = len(uniqueness)
    return largest_remainder([keep_ratio * per_frame] * frames,
                             baselines.vidcom2.total_budget(frames, per_frame, keep_ratio), 1, per_frame)


def no_merge(hidden, state, fuse, steps):
    state.sparsities.append(0.0)
    state.merged = 0.0 < fuse.min_ratio  # a step that merged less than min_ratio ends merging
    return hidden, torch.arange(hidden.shape[1])


# (owner, name, fixed replacement, the data-dependent step it replaces)
FIXED_CHOICES = [
    (baselines.relevance, "embeddings_and_relevance", fixed_relevance,
     "the frame–query relevance of a keyframe selector's CLIP: meta embeddings have no values to rank"),
    (baselines.adardkey, "embeddings_and_relevance", fixed_relevance, "the same, as AdaRD-Key imports it"),
    (harness.vilamp.selector.DKSSelector, "choose", fixed_dks,
     "DKS walks the frames reading each relevance and similarity as a Python float"),
    (baselines.fastvid, "dyseg", even_segments,
     "DySeg cuts where adjacent frames' similarity < τ, a number of cuts that depends on values: c even segments"),
    (baselines.flashvid, "dyseg", even_segments, "the same, as FlashVID imports it"),
    (baselines.divprune, "max_min_diverse", first_k,
     "DivPrune's greedy max–min walk, an argmax per kept token read as a Python int: the first k tokens"),
    (baselines.flashvid, "compress_segment", first_per_frame,
     "FlashVID's ADTS picks, TSTM trees and DPC-kNN clusters all choose by value: each frame's first A + S tokens"),
    (baselines.vidcom2, "frame_budgets", equal_budgets,
     "VidCom2's per-frame budgets from frame uniqueness, read as Python floats: every frame equally unique"),
    (harness.backbones.framefusion, "merge_step", no_merge,
     "FrameFusion's count of tokens over the similarity threshold: none merge, so merging ends before layer 0 and "
     "the importance prune (real, with the meta rules' top-k) cuts to the budget from layer 1 on"),
]

# The selection ops the meta rules answer with the first indices (harness.cost.meta), per reducer, besides the
# first generated token's argmax (index 0: <|endoftext|>, a stop, so generation ends after the prefill). Inference
# mode dispatches argsort as itself.
FIXED_OPS: dict[str, set[str]] = {
    "fastv": {"topk"},  # the last prompt token's attention ranks the visual tokens: the first k go on
    "pyramiddrop": {"topk"},  # the same at each stage
    "framefusion": {"topk"},  # the importance prune: the first tokens stay
    "visionzip": {"topk"},  # dominant tokens: each frame's first k_d; argmax: every other token joins target 0
    "tome": {"max", "argsort"},  # each A token's best B partner (B 0), the best-matched A tokens (the first r)
    "dycoke": {"argsort"},  # the least similar tokens to the reference frame: each frame's first ones
    "vidcom2": {"argsort"},  # the low-variance channels (the first C/2), each frame's lowest-scoring tokens
    "fastvid": {"argsort", "topk", "min"},  # salient tokens, DPC-kNN's neighbours and δ, the anchors; argmax: DTM
}


@pytest.fixture(scope="module")
def patched():
    """FIXED_CHOICES in place, and the selectors' CLIP at full size on meta (a stand-in for weights not on disk)."""
    with meta_values():
        CLIPS.update((name, meta_clip(name, tower)) for name, tower in ENCODERS.items())
    with pytest.MonkeyPatch.context() as patch:
        for owner, name, replacement, _why in FIXED_CHOICES:
            patch.setattr(owner, name, replacement)
        patch.setattr(harness.vilamp.selector, "load_encoder", CLIPS.__getitem__)  # dks-stream's own encoder
        yield


class Videos(dict):
    """1 fps test videos by length in seconds, written on first use."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def __missing__(self, seconds: int) -> Path:
        self[seconds] = path = self.directory / f"{seconds}s.mp4"
        write_video(path, num_frames=seconds, fps=1.0, size=FRAME_SIZE)
        return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Videos:
    return Videos(tmp_path_factory.mktemp("meta"))


@pytest.fixture(scope="module")
def videomme():
    return get_task("videomme")  # read once: discovering the task files costs ~0.2 s a call


BACKBONES: dict[tuple[str, str], object] = {}  # one meta backbone per backbone component: no per-sample state


def backbone_for(spec, composer: str = VILAMP_COMPOSER):
    key = (str(spec.backbone), composer)
    if key not in BACKBONES:
        BACKBONES[key] = meta_backbone(spec, composer)
    return BACKBONES[key]


def decoder(backbone):
    """The LLM's decoder (Qwen2Model): inside the VLM, or the causal LM's own `model` (ViLAMP)."""
    return getattr(backbone.model.model, "language_model", backbone.model.model)


# ---------------------------------------------------------------- expectations


def per_row(backbone, frames: int, downscale: int | None) -> tuple[int, int]:
    """(encoded rows, tokens per row) the backbone gives `frames` frames of FRAME_SIZE."""
    if isinstance(backbone, Qwen25VLBackbone):
        shaped = Frames(tuple(range(frames)), tuple(map(float, range(frames))),
                        np.broadcast_to(np.zeros(3, np.uint8), (frames, FRAME_SIZE[1], FRAME_SIZE[0], 3)))
        h, w = backbone.coarse_grid(shaped, downscale) if downscale else backbone.native_grid(shaped)
        return math.ceil(frames / backbone.frames_per_row), h * w
    side = math.isqrt(backbone.tokens_per_frame) // (downscale or 1)
    return frames, side * side


def expected_visual(spec, backbone, result) -> int:
    """Visual tokens entering the LLM: the reducer's own count for the rows encoded, or for DFM keyframe rows whole
    and one token for every other row; plus the backbone's separators."""
    selector, reducer = build_methods(spec)
    downscale = getattr(selector, "grid_downscale", 1)
    rows, tokens = per_row(backbone, result.n_frames, downscale if downscale > 1 else None)
    count = reducer.visual_tokens(rows, tokens)
    if count is None:  # DFM
        group = getattr(backbone, "frames_per_row", 1)
        position = {frame: i for i, frame in enumerate(result.frame_indices)}
        key_rows = len({position[k] // group for k in result.keyframes})
        count = key_rows * tokens + rows - key_rows
    return count + (backbone.separator_tokens if count and backbone.placement == "sequential" else 0)


class Prefill:
    """What the prefill's first decoder layer and the LM head see (forward hooks, removed on exit)."""

    def __init__(self, backbone) -> None:
        self.backbone, self.inputs, self.caches, self.logits = backbone, [], [], []

    def __enter__(self) -> Prefill:
        attention = decoder(self.backbone).layers[0].self_attn

        def seen(_module, _args, kwargs):
            self.inputs.append(tuple(kwargs["hidden_states"].shape))
            self.caches.append(kwargs["past_key_values"])

        self.handles = [attention.register_forward_pre_hook(seen, with_kwargs=True),
                        self.backbone.model.lm_head.register_forward_hook(
                            lambda _m, _i, out: self.logits.append(tuple(out.shape)))]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize(("name", "seconds", "composer"), cases())
def test_full_size_spec_runs_on_meta_with_the_shapes_its_budget_says(name, seconds, composer, patched, videos,
                                                                    videomme):
    spec = MODELS.get(name)
    llm, planned = architecture(spec).llm, budget(spec)
    sample = Sample(id="meta", task="videomme", video=str(videos[seconds]), question=QUESTION, options=OPTIONS,
                    answer=0)
    with meta_values() as values:
        backbone = backbone_for(spec, composer)
        pipeline = Pipeline(spec, videomme, model=MetaVideoModel(spec, backbone))
        with Prefill(backbone) as prefill:
            result = pipeline.run(sample)
    assert result.status in ANSWERED, result.error
    assert result.generated_tokens == 1  # the fixed argmax: token 0, <|endoftext|>, a stop
    n, text = result.visual_tokens + result.text_tokens, result.text_tokens
    assert prefill.inputs[0] == (1, n, llm.hidden)  # the prefill: every visual and text token, full width
    assert prefill.logits == [(1, 1, llm.vocab)]
    filled = planned is not None and result.n_frames == planned.frames  # the video filled the selection
    visual = expected_visual(spec, backbone, result)
    assert result.visual_tokens == visual
    if filled and planned.entering is not None:
        assert visual == planned.entering  # the spec's budget, as `harness models` lists it

    cache = prefill.caches[0]
    assert len(cache.layers) == llm.layers
    for layer in cache.layers:
        assert tuple(layer.keys.shape[:2]) == (1, llm.kv_heads) and layer.keys.shape[3] == llm.head_dim
        assert layer.values.shape == layer.keys.shape
    lengths = [layer.keys.shape[2] for layer in cache.layers]  # what each layer saw
    _, reducer = build_methods(spec)
    request = reducer.request() if isinstance(reducer, InLlmReducer) else None
    if isinstance(request, LlmPrune):
        separators = backbone.separator_tokens if backbone.placement == "sequential" else 0
        stages = [count + separators for count in request.counts(visual - separators)]
        assert result.visual_tokens_after_llm_prune == stages[-1]
        if filled and planned.in_llm:
            assert tuple(stages) == planned.in_llm
        seen = [n if i < request.layers[0] else stages[sum(i >= at for at in request.layers) - 1] + text
                for i in range(llm.layers)]
        assert lengths == seen
    elif isinstance(request, LlmFuse):  # nothing merges (fixed): layer 0 sees all, the prune after it the rest
        assert lengths == [n] + [result.visual_tokens_after_llm_prune + text] * (llm.layers - 1)
        assert result.visual_tokens_after_llm_prune < visual
    else:
        assert lengths == [n] * llm.layers
    assert set(values.fixed) == {"argmax"} | FIXED_OPS.get(spec.reducer.name, set()), dict(values.fixed)


def test_a_spec_without_a_full_size_architecture_is_the_config_error_of_architecture():
    spec = MODELS.get("tiny-uniform")
    with pytest.raises(ConfigError) as raised:
        architecture(spec)
    with meta_values(), pytest.raises(ConfigError, match="no full-size architecture for backbone 'tiny'") as built:
        meta_backbone(spec)
    assert str(built.value) == str(raised.value)


@pytest.mark.parametrize("checkpoint", sorted(FULL_SIZE))
def test_meta_backbone_has_the_architectures_numbers(checkpoint):
    """The transformers model built from an Architecture has its widths and depths (what the cost formulas count)."""
    spec = next(MODELS.get(n) for n in sorted(filter(full_size, MODELS.names()))
                if architecture(MODELS.get(n)).checkpoint == checkpoint)
    arch = architecture(spec)
    with meta_values():
        backbone = backbone_for(spec)
    lm, llm = decoder(backbone), arch.llm
    assert len(lm.layers) == llm.layers and tuple(lm.embed_tokens.weight.shape) == (llm.vocab, llm.hidden)
    attention = lm.layers[0].self_attn
    assert attention.q_proj.out_features == llm.heads * llm.head_dim
    assert attention.k_proj.out_features == llm.kv_heads * llm.head_dim
    assert lm.layers[0].mlp.gate_proj.out_features == llm.intermediate
    inner = backbone.model.model
    if isinstance(backbone, Qwen25VLBackbone):
        blocks, projector = inner.visual.blocks, (inner.visual.merger.mlp[0], inner.visual.merger.mlp[2])
        assert blocks[0].mlp.gate_proj.out_features == arch.vision.intermediate
    else:
        blocks = (backbone.tower if isinstance(backbone, ViLAMPBackbone) else inner.vision_tower).encoder.layers
        projector = ((inner.mm_projector[0], inner.mm_projector[2]) if isinstance(backbone, ViLAMPBackbone)
                     else (inner.multi_modal_projector.linear_1, inner.multi_modal_projector.linear_2))
        assert blocks[0].mlp.fc1.out_features == arch.vision.intermediate
    assert len(blocks) == arch.vision.layers
    assert (projector[0].in_features, projector[0].out_features, projector[1].out_features) == arch.projector
    if arch.encoder is not None:  # ViLAMP's own CLIP
        clip = backbone.image_text_encoder.model.vision_model
        assert len(clip.encoder.layers) == arch.encoder.layers and clip.config.hidden_size == arch.encoder.hidden


def test_meta_rules_keep_indices_real_fix_selections_and_refuse_values():
    with meta_values() as values, torch.inference_mode():
        x = torch.empty(6, 4, device="meta")
        ids = torch.tensor([3, 1, 2], device="meta")
        assert not ids.is_meta and ids.tolist() == [3, 1, 2]  # integer data stays real
        assert not torch.arange(5, device="meta").is_meta and torch.ones(2, 2, device="meta").is_meta
        assert (x[ids] * torch.ones(4)).is_meta  # a real tensor meeting a meta one: the result is meta
        assert x.cpu().is_meta  # an unknown value stays unknown
        assert torch.topk(x[:, 0], 3).indices.tolist() == [0, 1, 2]
        assert torch.argsort(x, dim=1).tolist() == [[0, 1, 2, 3]] * 6
        assert int(x.argmax()) == 0 and x.max(dim=0).indices.tolist() == [0] * 4
        assert dict(values.fixed) == {"topk": 1, "argsort": 1, "argmax": 1, "max": 1}
        with pytest.raises(DataDependent):
            float(x.sum())
        with pytest.raises(DataDependent):
            torch.nonzero(x > 0)
        with pytest.raises(DataDependent, match="writes meta values into a real tensor"):
            torch.zeros(6).index_add_(0, torch.arange(6), x[:, 0])
        with pytest.raises(RuntimeError, match="same reduction dim") as shape_error:
            x @ x  # a shape error is itself, not DataDependent: what a meta run is for
        assert not isinstance(shape_error.value, DataDependent)
