"""The interface every backbone (VLM) offers the pipeline.

A backbone receives decoded `Frames`; it never opens a file, picks frames or knows the task name. It holds no
per-sample state: everything `generate` needs about the video travels in the `VisualSequence` (its tokens, the
encoded rows they stand for and the `EncodedVideo` those rows index), so one instance can serve interleaved
samples. Its optional hooks (harness.methods.hooks.HOOKS) let frame selectors and token reducers stay
backbone-agnostic; the class lists them in `hooks`, so a preflight can check a spec without loading weights.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from harness.core.config import ConfigError
from harness.core.records import EncodedVideo, Frames, Generation, GenerationConfig, Prompt, VisualSequence

# "sequential": visual tokens take consecutive positions, whatever they are. "grid": each visual token takes the
# (time, row, column) position of an encoded row (Qwen2.5-VL's M-RoPE), so a reducer must say which row each of its
# tokens stands for (VisualSequence.rows), and a merged token without a declared row cannot be placed.
Placement = Literal["sequential", "grid"]


class Backbone(Protocol):
    """Instance side: `encode_frames` and `generate`, plus the methods of every hook in `hooks`."""

    name: str
    hooks: frozenset[str]  # hooks this instance implements (a subset of its class's)
    tokens_per_frame: int  # visual tokens one frame (or temporal group) contributes without reduction

    def encode_frames(self, frames: Frames) -> EncodedVideo:
        """Per-row visual tokens in the LLM's input space (after projector and pooling)."""
        ...

    def generate(self, visual: VisualSequence, prompt: Prompt, config: GenerationConfig) -> Generation:
        """Answer `prompt` with the visual sequence placed before the user text; greedy by default."""
        ...


class BackboneClass(Protocol):
    """What the BACKBONES registry holds: a class that can be checked without weights, and loaded.

    `load(**args)` builds an instance (building a tiny checkpoint on first use). `preflight(**args)` raises
    ConfigError (one line) for arguments or checkpoints that cannot work, without loading weights.
    `tokens_per_frame_for(**args)` is the visual tokens per frame for those arguments, known from the config
    alone, or None when it depends on the frame size (Qwen2.5-VL's dynamic resolution). `checkpoint_dir(**args)`
    is the directory `load` reads the weights from when it is one on disk (a tiny checkpoint is built on first
    use), else None: what the cost model reads a config.json from.
    """

    hooks: ClassVar[frozenset[str]]
    placement: ClassVar[Placement]
    separator_tokens: ClassVar[int]  # tokens added after a non-empty visual sequence (LLaVA-OV's image_newline)

    @classmethod
    def load(cls, **args: Any) -> Backbone: ...

    @classmethod
    def preflight(cls, **args: Any) -> None: ...

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int | None: ...

    @classmethod
    def checkpoint_dir(cls, **args: Any) -> Path | None: ...


def bind_arguments(backbone: str, load: Callable[..., Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` completed with `load`'s defaults: how a preflight checks a spec's arguments without loading.

    An argument `load` does not take is a ConfigError naming the backbone, the key and the valid keys.
    """
    signature = inspect.signature(load)
    valid = [name for name, p in signature.parameters.items()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in args:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"backbone {backbone!r}: unknown argument {key!r}{hint}; valid: {', '.join(valid)}")
    bound = signature.bind(**args)
    bound.apply_defaults()
    return dict(bound.arguments)
