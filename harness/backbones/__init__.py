"""Backbones: one file per VLM family, registered lazily by name."""

from harness.backbones.base import Backbone, HookUnavailable
from harness.registry import Registry

BACKBONES: Registry = Registry("backbone")
BACKBONES.register("tiny", "harness.backbones.tiny:load_tiny")

__all__ = ["BACKBONES", "Backbone", "HookUnavailable"]
