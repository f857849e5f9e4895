"""Runnable MODEL specs: a named backbone × frame selector × token reducer, each a name plus arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.registry import Registry


@dataclass(frozen=True)
class Component:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.name}({args})"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    backbone: Component
    selector: Component
    reducer: Component = Component("none")

    def hooks(self) -> str:
        """What the selector and reducer need beyond encode/generate: their declared `hook`s joined by "+"."""
        from harness.reduction import REDUCERS
        from harness.selection import SELECTORS

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
))
_add(ModelSpec(
    "tiny-uniform-1fps",
    "tiny random LLaVA-OneVision, 1 frame per second capped at 64 frames, no token reduction",
    Component("tiny"), Component("uniform", {"fps": 1.0, "max_frames": 64}),
))
# Baselines on the tiny backbone (baselines/*.py hold each method's paper defaults and sources).
_TINY_TOKENS_PER_FRAME = 16  # 8×8 SigLIP patches pooled 2× (harness/backbones/tiny.py); a test checks it
_add(ModelSpec(
    "tiny-uniform-vilamp-budget",
    "tiny backbone, uniform frames budget-matched to ViLAMP's visual tokens on each video (1 fps ≤ 600, K=32)",
    Component("tiny"), Component("uniform", {"budget": "vilamp", "tokens_per_frame": _TINY_TOKENS_PER_FRAME}),
))
_add(ModelSpec(
    "tiny-topk",
    "tiny backbone, top-32 frames by tiny-clip question relevance from a 1 fps pool",
    Component("tiny"), Component("topk", {"k": 32, "encoder": "tiny-clip"}),
))
_add(ModelSpec(
    "tiny-aks",
    "tiny backbone, AKS judge-and-split keyframes (M=32, t1=0.8, depth 5) by tiny-clip relevance, 1 fps pool",
    Component("tiny"), Component("aks", {"max_frames": 32, "encoder": "tiny-clip"}),
))
_add(ModelSpec(
    "tiny-bolt",
    "tiny backbone, BOLT inverse-CDF keyframes (n=32, power 3) by tiny-clip relevance, 1 fps pool",
    Component("tiny"), Component("bolt", {"n": 32, "power": 3.0, "encoder": "tiny-clip"}),
))
# tiny has 16 tokens per frame: VisionZip's 64/576 would keep 2 and no contextual token, so use the 25% row.
_add(ModelSpec(
    "tiny-visionzip",
    "tiny backbone, 16 uniform frames, VisionZip (mean received SigLIP attention) keeping 25% of tokens per frame",
    Component("tiny"), Component("uniform", {"n": 16}), Component("visionzip", {"retention": 0.25}),
))
_add(ModelSpec(
    "tiny-tome",
    "tiny backbone, 16 uniform frames, ToMe bipartite merging of the video tokens down to 25%",
    Component("tiny"), Component("uniform", {"n": 16}), Component("tome", {"keep_ratio": 0.25}),
))
_add(ModelSpec(
    "tiny-dycoke",
    "tiny backbone, 16 uniform frames, DyCoke temporal merging (windows of 4, K=0.7)",
    Component("tiny"), Component("uniform", {"n": 16}), Component("dycoke", {"prune_ratio": 0.7}),
))
# The tiny LLM has 2 layers, so FastV's K=2 would prune after the last one: K=1.
_add(ModelSpec(
    "tiny-fastv",
    "tiny backbone, 16 uniform frames, FastV pruning 50% of visual tokens from LLM layer 1",
    Component("tiny"), Component("uniform", {"n": 16}), Component("fastv", {"layer": 1, "ratio": 0.5}),
))
# Real transformers backbone classes. `*-tiny-*`: seeded tiny random checkpoints of the same class (offline);
# `*-7b-*`: the published checkpoints by hub id (offline they must already be in the local HF cache), at each
# paper's frame count: LLaVA-OV 32 (arXiv 2408.03326), LLaVA-Video 64 (arXiv 2410.02713), Qwen2.5-VL 2 fps ≤ 768
# (arXiv 2502.13923, as lmms-eval's qwen2_5_vl runs it).
for _family, _desc, _hub, _sel in (
    ("llava-ov", "LLaVA-OneVision", "llava-hf/llava-onevision-qwen2-7b-ov-hf", {"n": 32}),
    ("llava-video", "LLaVA-Video (LLaVA-OV class)", "llava-hf/LLaVA-Video-7B-Qwen2-hf", {"n": 64}),
    ("qwen25vl", "Qwen2.5-VL", "Qwen/Qwen2.5-VL-7B-Instruct", {"fps": 2.0, "max_frames": 768}),
):
    _add(ModelSpec(
        f"{_family}-tiny-uniform",
        f"tiny random {_desc} (real transformers class, offline), 16 uniform frames, no token reduction",
        Component(_family, {"tiny_seed": 0}), Component("uniform", {"n": 16}),
    ))
    _add(ModelSpec(
        f"{_family}-7b-uniform",
        f"{_desc} 7B ({_hub}, bfloat16), uniform {_sel}, no token reduction",
        Component(_family, {"checkpoint": _hub, "dtype": "bfloat16"}), Component("uniform", _sel),
    ))
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
))
_add(ModelSpec(
    "vilamp-tiny-10k",
    "vilamp-tiny at 1 fps capped at 10,000 frames (streamed; for needle_10k)",
    Component("vilamp-tiny"),
    Component("dks-stream", {**_VILAMP_DKS, "encoder": "backbone", "max_frames": 10_000}), Component("dfm"),
))
_add(ModelSpec(
    "vilamp-tf",
    "training-free ViLAMP on the tiny backbone: tiny-clip DKS (K=32, τ=0.85) + DFM on its own patch tokens",
    Component("tiny"), Component("dks-stream", {"k": 32, "tau": 0.85, "fill": True, "encoder": "tiny-clip"}),
    Component("dfm", {"alpha": 0.01, "lam": 1.0}),
))
