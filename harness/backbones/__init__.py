"""Backbones: one file per VLM family, registered lazily by name."""

from harness.backbones.base import Backbone, HookUnavailable, LlmPrune, require_hook
from harness.registry import Registry

BACKBONES: Registry = Registry("backbone")
BACKBONES.register("tiny", "harness.backbones.tiny:load_tiny")
BACKBONES.register("fixed-cost", "harness.backbones.fixed_cost:FixedCost")  # runner benchmarks/tests
BACKBONES.register("vilamp", "harness.vilamp.model:load_vilamp")  # official layout, 7B checkpoint from disk
BACKBONES.register("vilamp-tiny", "harness.vilamp.model:load_vilamp_tiny")  # same code, tiny random checkpoint

# transformers classes loaded by hub id or directory (`checkpoint=`), or seeded tiny checkpoints (`tiny_seed=`)
BACKBONES.register("llava-ov", "harness.backbones.llava_ov:load_llava_ov")
BACKBONES.register("llava-video", "harness.backbones.llava_ov:load_llava_video")
BACKBONES.register("qwen25vl", "harness.backbones.qwen25vl:load_qwen25vl")
_HF_CHECKPOINT_BACKBONES = ("llava-ov", "llava-video", "qwen25vl")


def check_backbone(name: str, args: dict) -> None:
    """In the driver, before any worker starts: a `checkpoint` that cannot be found offline is one ConfigError."""
    if name in _HF_CHECKPOINT_BACKBONES and args.get("checkpoint") is not None:
        from harness.backbones.hf_common import resolve_checkpoint

        resolve_checkpoint(str(args["checkpoint"]))
    check = getattr(BACKBONES.get(name), "preflight", None)  # a factory's own check, e.g. vilamp's checkpoint
    if check is not None:
        check(**args)

__all__ = ["BACKBONES", "Backbone", "HookUnavailable", "LlmPrune", "check_backbone", "require_hook"]
