"""Largest-remainder apportionment (Hamilton's method), shared by VidCom2's frame budgets and FlashVID's per-frame
cluster counts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real


def largest_remainder(quotas: Sequence[Real], total: int, low: int, high: int,
                      priority: Sequence[float] | None = None) -> list[int]:
    """Integers k_t in [low, high] summing to `total`, by largest remainders of the real `quotas`.

    Whole parts first (clamped to [low, high]); then one unit at a time to the item furthest below its quota that
    has room, or, when the floor of `low` per item overshoots, from the item furthest above its quota. Equal
    remainders go by `priority` (higher first to gain, last to lose), then to the earlier item. Pass exact quotas
    (Fractions) where equal remainders must tie exactly: float quotas of different whole parts round differently.
    """
    priority = priority if priority is not None else [0.0] * len(quotas)
    counts = [min(high, max(low, math.floor(q))) for q in quotas]
    remaining = total - sum(counts)
    while remaining > 0:
        room = [t for t in range(len(counts)) if counts[t] < high]
        best = max(room, key=lambda t: (quotas[t] - counts[t], priority[t], -t))
        counts[best] += 1
        remaining -= 1
    while remaining < 0:
        spare = [t for t in range(len(counts)) if counts[t] > low]
        worst = min(spare, key=lambda t: (quotas[t] - counts[t], priority[t], t))
        counts[worst] -= 1
        remaining += 1
    return counts
