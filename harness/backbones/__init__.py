"""Backbones: one file per VLM family, registered lazily by name."""

from harness.backbones.base import Backbone
from harness.core.records import LlmPrune
from harness.methods.hooks import HookUnavailable, require_hook
from harness.core.registry import Registry

BACKBONES: Registry = Registry("backbone")
BACKBONES.register("tiny", "harness.backbones.tiny:load_tiny")
BACKBONES.register("fixed-cost", "harness.backbones.fixed_cost:FixedCost")  # runner benchmarks/tests
BACKBONES.register("vilamp", "harness.vilamp.model:load_vilamp")  # official layout, 7B checkpoint from disk
BACKBONES.register("vilamp-tiny", "harness.vilamp.model:load_vilamp_tiny")  # same code, tiny random checkpoint

# transformers classes loaded by hub id or directory (`checkpoint=`), or seeded tiny checkpoints (`tiny_seed=`)
BACKBONES.register("llava-ov", "harness.backbones.llava_ov:load_llava_ov")
BACKBONES.register("llava-video", "harness.backbones.llava_ov:load_llava_video")
BACKBONES.register("qwen25vl", "harness.backbones.qwen25vl:load_qwen25vl")


def check_backbone(name: str, args: dict) -> None:
    """In the driver, before any worker starts: the factory's own `preflight(**args)`, if it has one (a checkpoint
    that cannot be found offline is one ConfigError)."""
    check = getattr(BACKBONES.get(name), "preflight", None)
    if check is not None:
        check(**args)

__all__ = ["BACKBONES", "Backbone", "HookUnavailable", "LlmPrune", "check_backbone", "require_hook"]
