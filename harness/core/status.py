"""A sample's status, which statuses count as answered, and the one exception → status mapping.

The pipeline and the runner both turn exceptions into statuses through `failure_status`; the runner decides
on its own which of them to retry. Core imports neither torch nor ray: an exception of a library nobody
imported cannot have been raised, so the types are looked up in `sys.modules`.
"""

from __future__ import annotations

import sys
from typing import Literal

Status = Literal["ok", "unparsed", "missing", "decode_error", "model_error", "oom", "timeout", "retries_exhausted"]

# The model produced an answer (parsed or not); every other status is a failure.
ANSWERED: frozenset[Status] = frozenset({"ok", "unparsed"})

class SampleError(Exception):
    """An error that says which status its sample gets (harness.video.reader.VideoError: missing, decode_error)."""

    status: Status


def failure_status(exc: BaseException) -> Status:
    """The status of a sample that raised `exc`: its own (a SampleError), "oom", or "model_error"."""
    if isinstance(exc, SampleError):
        return exc.status
    return "oom" if _is_oom(exc) else "model_error"


def first_line(exc: BaseException) -> str:
    """The first line of the exception's message, or its type name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):  # a CPU allocation that failed
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    ray_exceptions = sys.modules.get("ray.exceptions")
    if ray_exceptions is None:
        return False
    # Ray kills a worker when the node runs out of memory; the actor's death says why only in its message.
    return isinstance(exc, ray_exceptions.OutOfMemoryError) or (
        isinstance(exc, ray_exceptions.RayActorError) and "low on memory" in str(exc))
