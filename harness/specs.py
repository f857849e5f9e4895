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
