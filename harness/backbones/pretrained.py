"""Loading and checking a transformers VLM class by hub id or directory (`checkpoint=`), or from a seeded tiny
random checkpoint of the same class built once in the cache (`tiny_seed=`), through the same `from_pretrained`
path: what LLaVA-OV, LLaVA-Video and Qwen2.5-VL share as registry classes (BackboneClass)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from harness.backbones.base import bind_arguments
from harness.backbones.decoding import ChatBackbone
from harness.core.config import ConfigError
from harness.hf.checkpoints import on_disk
from harness.hf.loading import check_attn_implementation, check_checkpoint, load_pretrained, resolve_dtype
from harness.hf.text import stop_ids


class PretrainedBackbone(ChatBackbone):
    family: ClassVar[str]  # the registry name, in messages and as the instance name for `checkpoint=`
    tiny_name: ClassVar[str]  # the instance name for `tiny_seed=`
    model_class: ClassVar[str]  # the transformers class, by name: transformers loads with the weights
    default_tiny_seed: ClassVar[int | None] = None  # used when neither argument is given

    def __init__(self, model: Any, processor: Any, name: str) -> None:
        self.name = name
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device = model.device
        self.dtype = model.dtype
        self.hidden_size = model.config.text_config.hidden_size
        self.video_token_id: int = model.config.video_token_id
        self.stop_ids = stop_ids(model)

    @classmethod
    def tiny_checkpoint(cls, seed: int) -> Path:
        """The cached tiny checkpoint of this class for `seed` (built on first use)."""
        raise NotImplementedError

    @classmethod
    def load(
        cls, *, checkpoint: str | None = None, tiny_seed: int | None = None, dtype: str = "float32",
        device: str = "cpu", attn_implementation: str = "sdpa", num_threads: int | None = None,
    ) -> Self:
        import transformers

        cls._check(checkpoint, tiny_seed, dtype, attn_implementation)
        seed = cls._tiny_seed(checkpoint, tiny_seed)
        source = str(checkpoint) if seed is None else str(cls.tiny_checkpoint(seed))
        model, processor = load_pretrained(getattr(transformers, cls.model_class), transformers.AutoProcessor, source,
                                           dtype=dtype, device=device, attn_implementation=attn_implementation,
                                           num_threads=num_threads)
        return cls(model, processor, cls.family if seed is None else cls.tiny_name)

    @classmethod
    def preflight(cls, **args: Any) -> None:
        """Argument names, exactly one weight source, dtype, attention implementation, and a `checkpoint` that
        resolves offline (a hub id must be in the local HF cache)."""
        bound = bind_arguments(cls.family, cls.load, args)
        cls._check(bound["checkpoint"], bound["tiny_seed"], bound["dtype"], bound["attn_implementation"])

    @classmethod
    def checkpoint_dir(cls, **args: Any) -> Path | None:
        bound = bind_arguments(cls.family, cls.load, args)
        seed = cls._tiny_seed(bound["checkpoint"], bound["tiny_seed"])
        return cls.tiny_checkpoint(seed) if seed is not None else on_disk(bound["checkpoint"])

    @classmethod
    def _check(cls, checkpoint: str | None, tiny_seed: int | None, dtype: str, attn_implementation: str) -> None:
        """The checks `preflight` and `load` share, on arguments already bound to `load`'s signature."""
        cls._tiny_seed(checkpoint, tiny_seed)
        resolve_dtype(dtype)
        check_attn_implementation(attn_implementation)
        check_checkpoint(checkpoint)

    @classmethod
    def _tiny_seed(cls, checkpoint: str | None, tiny_seed: int | None) -> int | None:
        """The tiny seed to load, or None to load `checkpoint`."""
        if checkpoint is None and tiny_seed is None:
            tiny_seed = cls.default_tiny_seed
        if (checkpoint is None) == (tiny_seed is None):
            raise ConfigError(f"{cls.family} needs exactly one of checkpoint=<hub id or dir> or tiny_seed=<int>")
        return tiny_seed
