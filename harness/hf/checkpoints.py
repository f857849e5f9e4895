"""Checkpoints built on this machine: written once, atomically, into the harness cache.

Every tiny random checkpoint (LLaVA-OV, LLaVA-Video, Qwen2.5-VL, ViLAMP, CLIP) follows one recipe: seed → build
→ write into a staging directory → rename into place (`tiny_checkpoint`), so a cache directory is either absent
or complete, and concurrent first users build it once.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.paths import cache_dir

Write = Callable[[Path], None]  # fills a fresh directory with a checkpoint's files


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Random init inside the block draws from `seed`, without disturbing the caller's RNG: a tiny checkpoint's
    weights depend on its seed alone."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save_atomically(directory: Path, write: Write) -> Path:
    """Run `write(staging)` in a temporary sibling and rename it to `directory`, which must not exist yet."""
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"checkpoint directory already exists: {directory}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        write(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            staging.rename(directory)
        except OSError as error:  # another builder renamed its copy first
            raise FileExistsError(f"checkpoint directory appeared while building: {directory}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def ensure_built(directory: Path, write: Write) -> Path:
    """`directory`, written atomically on first use; concurrent first users wait on a file lock instead of
    building twice."""
    if directory.is_dir():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not directory.is_dir():
            save_atomically(directory, write)
    return directory


def on_disk(path: str | Path) -> Path | None:
    """`path` when it is a checkpoint directory here (it holds a config.json), else None (e.g. a hub id)."""
    directory = Path(path).expanduser()
    return directory if (directory / "config.json").is_file() else None


def tiny_checkpoint(kind: str, version: int, seed: int, write: Write) -> Path:
    """The cached tiny checkpoint `kind` for `seed`, written by `write` on first use.

    `version` is the kind's format number: bump it when its config, tokenizer or layout changes, so a stale
    cached checkpoint is not reused.
    """
    return ensure_built(cache_dir() / "models" / f"tiny-{kind}-v{version}-seed{seed}", write)


def save_all(directory: Path, *parts: Any) -> None:
    """`save_pretrained` of each part (model, processor, tokenizer) into `directory`."""
    for part in parts:
        part.save_pretrained(directory)
