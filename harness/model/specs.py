"""Runnable MODEL specs: a named backbone × frame selector × token reducer, each a name plus arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.registry import Registry


@dataclass(frozen=True)
class Component:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.name}({args})"


ANSWER_MODES = ("generate", "option_letter")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    backbone: Component
    selector: Component
    reducer: Component = Component("none")
    # "generate": free text, parsed by the task's extractor. "option_letter": one greedy step restricted to the
    # option letters (GenerationConfig.choices) — for random tiny checkpoints, which cannot follow the format.
    answer: str = "generate"

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_MODES:
            raise ValueError(f"model spec {self.name!r}: answer must be one of {ANSWER_MODES}, got {self.answer!r}")

    def hooks(self) -> str:
        """What the selector and reducer need beyond encode/generate: their declared `hook`s joined by "+"."""
        from harness.methods.reduction import REDUCERS
        from harness.methods.selection import SELECTORS

        used = [getattr(registry.get(part.name), "hook", "unspecified")
                for registry, part in ((SELECTORS, self.selector), (REDUCERS, self.reducer))]
        return "+".join(h for h in used if h != "none") or "none"


MODELS: Registry[ModelSpec] = Registry("model")


def _add(spec: ModelSpec) -> None:
    MODELS.register(spec.name, spec)


_add(ModelSpec(
    "tiny-uniform",
    "tiny random LLaVA-OneVision (offline default), 16 uniform frames, no token reduction",
    Component("tiny"), Component("uniform", {"n": 16}),
    answer="option_letter",
))
_add(ModelSpec(
    "tiny-uniform-1fps",
    "tiny random LLaVA-OneVision, 1 frame per second capped at 64 frames, no token reduction",
    Component("tiny"), Component("uniform", {"fps": 1.0, "max_frames": 64}),
    answer="option_letter",
))
# Baselines on the tiny backbone (baselines/*.py hold each method's paper defaults and sources).
_TINY_TOKENS_PER_FRAME = 16  # 8×8 SigLIP patches pooled 2× (harness/backbones/tiny.py); a test checks it
_add(ModelSpec(
    "tiny-uniform-vilamp-budget",
    "tiny backbone, uniform frames budget-matched to ViLAMP's visual tokens on each video (1 fps ≤ 600, K=32)",
    Component("tiny"), Component("uniform", {"budget": "vilamp", "tokens_per_frame": _TINY_TOKENS_PER_FRAME}),
    answer="option_letter",
))
_add(ModelSpec(
    "tiny-topk",
    "tiny backbone, top-32 frames by tiny-clip question relevance from a 1 fps pool",
    Component("tiny"), Component("topk", {"k": 32, "encoder": "tiny-clip"}),
    answer="option_letter",
))
_add(ModelSpec(
    "tiny-aks",
    "tiny backbone, AKS judge-and-split keyframes (M=32, t1=0.8, depth 5) by tiny-clip relevance, 1 fps pool",
    Component("tiny"), Component("aks", {"max_frames": 32, "encoder": "tiny-clip"}),
    answer="option_letter",
))
_add(ModelSpec(
    "tiny-bolt",
    "tiny backbone, BOLT inverse-CDF keyframes (n=32, power 3) by tiny-clip relevance, 1 fps pool",
    Component("tiny"), Component("bolt", {"n": 32, "power": 3.0, "encoder": "tiny-clip"}),
    answer="option_letter",
))
# tiny has 16 tokens per frame: VisionZip's 64/576 would keep 2 and no contextual token, so use the 25% row.
_add(ModelSpec(
    "tiny-visionzip",
    "tiny backbone, 16 uniform frames, VisionZip (mean received SigLIP attention) keeping 25% of tokens per frame",
    Component("tiny"), Component("uniform", {"n": 16}), Component("visionzip", {"retention": 0.25}),
    answer="option_letter",
))
_add(ModelSpec(
    "tiny-tome",
    "tiny backbone, 16 uniform frames, ToMe bipartite merging of the video tokens down to 25%",
    Component("tiny"), Component("uniform", {"n": 16}), Component("tome", {"keep_ratio": 0.25}),
    answer="option_letter",
))
_add(ModelSpec(
    "tiny-dycoke",
    "tiny backbone, 16 uniform frames, DyCoke temporal merging (windows of 4, K=0.7)",
    Component("tiny"), Component("uniform", {"n": 16}), Component("dycoke", {"prune_ratio": 0.7}),
    answer="option_letter",
))
# The tiny LLM has 2 layers, so FastV's K=2 would prune after the last one: K=1.
_add(ModelSpec(
    "tiny-fastv",
    "tiny backbone, 16 uniform frames, FastV pruning 50% of visual tokens from LLM layer 1",
    Component("tiny"), Component("uniform", {"n": 16}), Component("fastv", {"layer": 1, "ratio": 0.5}),
    answer="option_letter",
))
# Real transformers backbone classes. `*-tiny-*`: seeded tiny random checkpoints of the same class (offline);
# `*-7b-*`: the published checkpoints by hub id (offline they must already be in the local HF cache), at each
# paper's frame count: LLaVA-OV 32 (arXiv 2408.03326), LLaVA-Video 64 (arXiv 2410.02713), Qwen2.5-VL 2 fps ≤ 768
# (arXiv 2502.13923, as lmms-eval's qwen2_5_vl runs it).
_HUBS = (
    ("llava-ov", "LLaVA-OneVision", "llava-hf/llava-onevision-qwen2-7b-ov-hf", {"n": 32}),
    ("llava-video", "LLaVA-Video (LLaVA-OV class)", "llava-hf/LLaVA-Video-7B-Qwen2-hf", {"n": 64}),
    ("qwen25vl", "Qwen2.5-VL", "Qwen/Qwen2.5-VL-7B-Instruct", {"fps": 2.0, "max_frames": 768}),
)
for _family, _desc, _hub, _sel in _HUBS:
    _add(ModelSpec(
        f"{_family}-tiny-uniform",
        f"tiny random {_desc} (real transformers class, offline), 16 uniform frames, no token reduction",
        Component(_family, {"tiny_seed": 0}), Component("uniform", {"n": 16}),
        answer="option_letter",
    ))
    _add(ModelSpec(
        f"{_family}-7b-uniform",
        f"{_desc} 7B ({_hub}, bfloat16), uniform {_sel}, no token reduction",
        Component(_family, {"checkpoint": _hub, "dtype": "bfloat16"}), Component("uniform", _sel),
    ))
# The standard comparison on each real backbone: the paper's uniform frames (above), uniform at ViLAMP's budget,
# the keyframe selectors, the token reducers and training-free ViLAMP. Tiny variants use the tiny CLIP and the
# tiny LLM's 2 layers (FastV at K=1); 7B variants use CLIP ViT-B/32 and FastV's K=2 (arXiv 2403.06764).
# reducers that emit tokens that are not rows of encode_frames and do not declare rows (the "token_positions" hook)
_MERGING = ("visionzip", "tome")
_PER_FRAME_7B = {"llava-ov": 196, "llava-video": 196}  # LLaVA-OV video frames: 27×27 SigLIP grid pooled to 14×14
for _family, _desc, _frames_7b in (("llava-ov", "LLaVA-OneVision", 32), ("llava-video", "LLaVA-Video", 64),
                                   ("qwen25vl", "Qwen2.5-VL", 32)):
    for _size, _backbone, _encoder, _n, _fastv_layer, _answer in (
        ("tiny", {"tiny_seed": 0}, "tiny-clip", 16, 1, "option_letter"),
        ("7b", {"checkpoint": {f: hub for f, _, hub, _ in _HUBS}[_family], "dtype": "bfloat16"}, "clip-vit-b32", _frames_7b, 2, "generate"),
    ):
        _base = f"{_family}-{_size}"
        _bb = Component(_family, _backbone)
        _uniform = Component("uniform", {"n": _n})
        _variants: list[tuple[str, str, Component, Component]] = [
            ("topk", f"top-32 frames by {_encoder} relevance", Component("topk", {"k": 32, "encoder": _encoder}),
             Component("none")),
            ("aks", f"AKS keyframes (M=32) by {_encoder}", Component("aks", {"max_frames": 32, "encoder": _encoder}),
             Component("none")),
            ("bolt", f"BOLT keyframes (n=32, power 3) by {_encoder}",
             Component("bolt", {"n": 32, "power": 3.0, "encoder": _encoder}), Component("none")),
            # 16 tokens per tiny frame: VisionZip's 64/576 would keep 2 and no contextual token (as tiny-visionzip)
            ("visionzip", f"{_n} uniform frames, VisionZip", _uniform,
             Component("visionzip", {"retention": 0.25} if _size == "tiny" else {})),
            ("tome", f"{_n} uniform frames, ToMe to 25%", _uniform, Component("tome")),
            ("dycoke", f"{_n} uniform frames, DyCoke temporal merging", _uniform, Component("dycoke")),
            ("fastv", f"{_n} uniform frames, FastV pruning 50% from layer {_fastv_layer}", _uniform,
             Component("fastv", {"layer": _fastv_layer, "ratio": 0.5})),
            ("vilamp-tf", f"training-free ViLAMP: {_encoder} DKS (K=32, τ=0.85) + DFM on its own tokens",
             Component("dks-stream", {"k": 32, "tau": 0.85, "fill": True, "encoder": _encoder}), Component("dfm")),
        ]
        # Qwen2.5-VL's tokens per frame depend on the frame size (dynamic resolution), so no fixed-budget spec; and a
        # merged token has an M-RoPE (time, row, column) position only if its reducer declares its row (DFM does).
        if _family in _PER_FRAME_7B:
            _per_frame = _TINY_TOKENS_PER_FRAME if _size == "tiny" else _PER_FRAME_7B[_family]
            _variants.insert(0, ("uniform-vilamp-budget", "uniform frames at ViLAMP's visual-token budget",
                                 Component("uniform", {"budget": "vilamp", "tokens_per_frame": _per_frame}),
                                 Component("none")))
        for _method, _what, _selector, _reducer in _variants:
            if _family == "qwen25vl" and _method in _MERGING:
                continue
            _add(ModelSpec(f"{_base}-{_method}", f"{_desc} {_size}: {_what}", _bb, _selector, _reducer,
                           answer=_answer))
# ViLAMP (arXiv 2504.02438), harness/vilamp/: DKS keyframes + DFM merged non-keyframes, streamed in chunks.
# DKS switches as the official code: relevance floor 0.2 and fill-up to exactly K (notes/vilamp.md §1.2).
_VILAMP_DKS = {"k": 32, "tau": 0.85, "floor": 0.2, "fill": True, "fps": 1.0, "max_frames": 600}
_add(ModelSpec(
    "vilamp",
    "ViLAMP-7B, official checkpoint layout (orange-sk/ViLAMP-llava-qwen_sig): its CLIP DKS + learned DFM, 1 fps ≤ 600",
    Component("vilamp"), Component("dks-stream", {**_VILAMP_DKS, "encoder": "backbone"}), Component("dfm"),
))
_add(ModelSpec(
    "vilamp-tiny",
    "the ViLAMP model code on a tiny random checkpoint in the official layout (offline), 1 fps ≤ 600",
    Component("vilamp-tiny"), Component("dks-stream", {**_VILAMP_DKS, "encoder": "backbone"}), Component("dfm"),
    answer="option_letter",
))
_add(ModelSpec(
    "vilamp-tiny-10k",
    "vilamp-tiny at 1 fps capped at 10,000 frames (streamed; for needle_10k)",
    Component("vilamp-tiny"),
    Component("dks-stream", {**_VILAMP_DKS, "encoder": "backbone", "max_frames": 10_000}), Component("dfm"),
    answer="option_letter",
))
_add(ModelSpec(
    "vilamp-tf",
    "training-free ViLAMP on the tiny backbone: tiny-clip DKS (K=32, τ=0.85) + DFM on its own patch tokens",
    Component("tiny"), Component("dks-stream", {"k": 32, "tau": 0.85, "fill": True, "encoder": "tiny-clip"}),
    Component("dfm", {"alpha": 0.01, "lam": 1.0}),
    answer="option_letter",
))
