"""`canary`: the LLaVA-OV class on the trained canary checkpoint shipped in the repo (harness/canary/weights/,
written by `make canary`, issue 13), loaded offline through `from_pretrained` like any local checkpoint.

Unlike `tiny`, its answers follow the needle: it was trained on the needle task's own renderer and question text,
so its accuracy is high when the needle reaches the model and chance when it does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from harness.backbones.base import bind_arguments
from harness.backbones.llava_ov import LlavaOvBackbone, local_tokens_per_frame
from harness.core.paths import canary_weights
from harness.hf.checkpoints import on_disk

CANARY_CHECKPOINT = canary_weights("llava-ov")


class CanaryBackbone(LlavaOvBackbone):
    family: ClassVar[str] = "canary"
    tiny_name: ClassVar[str] = "canary"

    @classmethod
    def load(  # type: ignore[override]
        cls, *, checkpoint: str | None = None, dtype: str = "float32", device: str = "cpu",
        attn_implementation: str = "sdpa", num_threads: int | None = None,
    ) -> Self:
        return super().load(checkpoint=cls._checkpoint(checkpoint), dtype=dtype, device=device,
                            attn_implementation=attn_implementation, num_threads=num_threads)

    @classmethod
    def preflight(cls, **args: Any) -> None:
        """As LLaVA-OV's, with the shipped checkpoint as the default `checkpoint` (no `tiny_seed`)."""
        bound = bind_arguments(cls.family, cls.load, args)
        cls._check(cls._checkpoint(bound["checkpoint"]), None, bound["dtype"], bound["attn_implementation"])

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int:
        return local_tokens_per_frame(Path(cls._checkpoint(bind_arguments(cls.family, cls.load, args)["checkpoint"])))

    @classmethod
    def checkpoint_dir(cls, **args: Any) -> Path | None:
        return on_disk(cls._checkpoint(bind_arguments(cls.family, cls.load, args)["checkpoint"]))

    @staticmethod
    def _checkpoint(checkpoint: str | None) -> str:
        return str(Path(checkpoint).expanduser() if checkpoint is not None else CANARY_CHECKPOINT)
