"""Backbones: one file per VLM family, registered lazily by name as classes (base.BackboneClass) whose hooks,
placement and argument checks are known without loading weights."""

from harness.backbones.base import BackboneClass
from harness.core.registry import Registry

BACKBONES: Registry[BackboneClass] = Registry("backbone")
BACKBONES.register("tiny", "harness.backbones.llava_ov:TinyBackbone")  # llava-ov with tiny_seed=0
BACKBONES.register("fixed-cost", "harness.backbones.fixed_cost:FixedCost")  # runner benchmarks/tests
BACKBONES.register("canary", "harness.backbones.canary:CanaryBackbone")  # llava-ov, trained canary weights (issue 13)
BACKBONES.register("vilamp", "harness.vilamp.model:ViLAMPBackbone")  # official layout, 7B checkpoint from disk
BACKBONES.register("vilamp-tiny", "harness.vilamp.model:ViLAMPTinyBackbone")  # same code, tiny random checkpoint

# transformers classes loaded by hub id or directory (`checkpoint=`), or seeded tiny checkpoints (`tiny_seed=`)
BACKBONES.register("llava-ov", "harness.backbones.llava_ov:LlavaOvBackbone")
BACKBONES.register("llava-video", "harness.backbones.llava_ov:LlavaVideoBackbone")
BACKBONES.register("qwen25vl", "harness.backbones.qwen25vl:Qwen25VLBackbone")

__all__ = ["BACKBONES"]
