"""Loading transformers checkpoints: dtype, device and attention options, and hub ids or directories resolved
offline-aware, so a checkpoint that cannot be found fails in one line before any worker starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from harness.core.config import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[name]


def check_attn_implementation(name: str) -> None:
    if name not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"unknown attn_implementation {name!r}; valid: {', '.join(ATTN_IMPLEMENTATIONS)}")


def resolve_device(device: str, num_threads: int | None) -> torch.device:
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available on this machine")
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    return target


def resolve_checkpoint(source: str) -> str:
    """A local directory, or a hub id; offline, the hub id must already be in the local HF cache.

    Raises ConfigError with one line naming what to do, so a run fails before any worker starts.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"checkpoint directory {path} has no config.json (expected a save_pretrained dir)")
        return str(path)
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise ConfigError(f"checkpoint {source!r}: no such directory, and not a hub id of the form org/name")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        return source
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(source, local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError and friends: not cached
        raise ConfigError(
            f"checkpoint {source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
            f"downloading it ({type(exc).__name__}); fetch it into the cache once with `hf download {source}` "
            f"(or set HF_HOME to a cache that holds it)"
        ) from None


def check_checkpoint(checkpoint: str | None) -> None:
    """A backbone preflight's checkpoint check: `checkpoint`, when given, must resolve (see resolve_checkpoint)."""
    if checkpoint is not None:
        resolve_checkpoint(str(checkpoint))


def load_pretrained(
    model_cls: Any,
    processor_cls: Any,
    source: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str = "sdpa",
    num_threads: int | None = None,
) -> tuple[Any, Any]:
    """`from_pretrained` for the model and its processor, with dtype / device / attention options."""
    check_attn_implementation(attn_implementation)
    torch_dtype = resolve_dtype(dtype)
    target = resolve_device(device, num_threads)
    where = resolve_checkpoint(source)
    model = model_cls.from_pretrained(where, dtype=torch_dtype, attn_implementation=attn_implementation)
    processor = processor_cls.from_pretrained(where)
    return model.to(target).eval(), processor
