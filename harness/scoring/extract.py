"""Answer extractors: raw model text → 0-based option index, deterministically.

An answer that cannot be parsed is None (scored wrong, status `unparsed`), never a random guess —
lmms-eval's LongVideoBench parser falls back to a random choice, which makes scores depend on the RNG.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from harness.core.records import LETTERS, Prediction
from harness.core.registry import Registry

Extractor = Callable[[str, Sequence[str]], Prediction]
EXTRACTORS: Registry[Extractor] = Registry("answer extractor")

# Lead-ins models put before the letter ("The best answer is B", "Best option: (B)").
_LEAD_INS = re.compile(
    r"^\s*(?:the\s+)?(?:best\s+|correct\s+|final\s+)?(?:answer|option)(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE
)


def _letter_patterns(n_options: int) -> list[re.Pattern[str]]:
    letters = LETTERS[:n_options]
    cls = f"[{letters}]"
    return [
        re.compile(rf"^\(?({cls})(?:[\.\):,\s]|$)"),  # starts with the letter: "B", "(B)", "B. text"
        re.compile(rf"^(?:\*\*|\[)({cls})(?:\*\*|\])"),  # markdown bold / bracketed: "**B**", "[B]"
        re.compile(rf"答案是\s*[:：]?\s*\(?({cls})"),  # "答案是C" (lmms-eval's answer phrases include it)
        re.compile(rf"\(({cls})\)"),  # "(B)" anywhere
        re.compile(rf"(?:answer|option)\s*(?:is)?\s*[:：]?\s*\(?({cls})\b", re.IGNORECASE),
        re.compile(rf"(?<![A-Za-z])({cls})(?=[\.\):])"),  # "B." / "B)" anywhere
    ]


@EXTRACTORS.decorator("mcq_letter")
def mcq_letter(raw: str, options: Sequence[str]) -> Prediction:
    """First option letter in priority order; else the one option whose full text appears."""
    text = _LEAD_INS.sub("", raw.strip(), count=1).strip()
    for pattern in _letter_patterns(len(options)):
        match = pattern.search(text)
        if match:
            return Prediction(raw=raw, answer=ord(match.group(1).upper()) - ord("A"), extractor="mcq_letter")
    lowered = text.lower()
    hits = [i for i, option in enumerate(options) if option and option.lower() in lowered]
    return Prediction(raw=raw, answer=hits[0] if len(hits) == 1 else None, extractor="mcq_letter")
