"""The runner's records: samples waiting for an attempt, stage calls in flight, and the order samples go out in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from harness.core.records import Sample
from harness.run.actors import Stage


def run_order(samples: Sequence[Sample], openers: int) -> list[Sample]:
    """Longest video first, so that the last to finish are short and the workers end together, but opened by the
    `openers` shortest (at most half the samples), shortest first: until the decoders are ahead each model actor waits
    on its first decodes, and short ones end that wait soonest (P2 in `make bench`: floor 1.023 → 1.002)."""
    ordered = sorted(samples, key=lambda s: -(s.duration_s or 0.0))
    split = len(ordered) - min(openers, len(ordered) // 2)
    return ordered[split:][::-1] + ordered[:split]


class Queued(NamedTuple):
    """A sample waiting for its next attempt."""

    sample: Sample
    attempt: int
    submitted: float | None  # when its first attempt started: a retry's in-flight time counts from there


@dataclass
class Call:
    """One sample's stage call in flight on one actor."""

    sample: Sample
    attempt: int
    submitted: float
    stage: Stage
    slot: int
    actor: Any  # the actor handle it was submitted to (a slot's actor may be replaced meanwhile)
    started: float | None  # when this stage started (the timeout's clock); None while queued behind another call
    seq: int = 0  # submission order of stage calls: an actor runs its calls in this order
    decode_seq: int = 0  # its decode call's seq: a decode actor runs its calls in this order
    frames: Any = None  # ObjectRef of the Decoded frames, until the model call that takes them is submitted
    info: Any = None  # ObjectRef of the DecodeInfo (or the decode's failure SampleResult), small: kept to the end
    decoder: tuple[int, Any] | None = None  # (slot, actor) that decoded it: whose death a failed model call reports


def actor_died(exc: BaseException) -> bool:
    """Whether a call's error is the death of the actor it ran on, not one raised in the call (Ray wraps an argument's
    actor death in a RayTaskError that is also a RayActorError)."""
    import ray

    return isinstance(exc, ray.exceptions.RayActorError) and not isinstance(exc, ray.exceptions.RayTaskError)


def decode_died(call: Call) -> bool:
    """Whether `call`'s decode result is its decode actor's death (read only once that actor is known dead)."""
    import ray

    try:
        ray.get(call.info, timeout=0)
    except ray.exceptions.RayError as exc:
        return actor_died(exc)
    return False
