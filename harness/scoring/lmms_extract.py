"""lmms-eval 0.7.3's answer extractors, rewritten from its task code for parity runs (`extractor: lmms-eval`, or
`rescore --extractor lmms-eval`): the number lmms-eval would print, beside ours. tests/interop/test_lmms_parity.py
checks them against lmms-eval's own functions on both reply corpora.

One deliberate difference: where lmms-eval falls back to `random.choice` (LongVideoBench, EgoSchema), these return
None (status `unparsed`, scored wrong), so a parity score is lmms-eval's minus its lucky guesses; the summary's
unparsed count says how many there were (each would have been right 1 time in k).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.core.records import LETTERS, Prediction

VERSION = 1  # lmms-eval 0.7.3's task code

# _task_utils/mcq_extract.py: its answer phrases, in order, and format priorities (higher wins)
_PHRASES = ("the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
            "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
            "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select",
            "i pick", "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは")
_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "parentheses": 6, "period": 5, "colon": 4, "right_paren": 3,
             "space": 2, "fallback": 0}
# longvideobench/utils.py parse_multi_choice_response: prefixes removed before the first capital A-E
_LVB_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer", "The best option is",
                 "The correct option is", "Best answer:", "Best option:")


def _prediction(raw: str, letter: str, options: Sequence[str], name: str) -> Prediction:
    index = LETTERS.index(letter) if letter and letter in LETTERS[: len(options)] else None
    return Prediction(raw=raw, answer=index, extractor=name)


def extract_mcq_answer(response: str, choices: Sequence[str]) -> str:
    """lmms-eval's `extract_mcq_answer`: candidates in several formats, the highest-priority format wins and within
    it the last occurrence; "" when nothing is found."""
    if not response or not response.strip():
        return ""
    text = response.strip()
    for char in ",.!?;:'\"":
        text = text.strip(char)
    text = f" {text} "
    candidates: list[tuple[str, int, str]] = []
    for fmt, template in (("parentheses", "({})"), ("period", "{}."), ("colon", "{}:"), ("right_paren", "{})"),
                          ("space", "{} ")):
        for ch in choices:
            if template.format(ch) in text:
                candidates.append((ch, text.rfind(template.format(ch)), fmt))
    lower = text.lower()
    for phrase in _PHRASES:
        at = lower.find(phrase)
        if at != -1:
            for ch in choices:
                position = text.find(ch, at + len(phrase))
                if position != -1:
                    candidates.append((ch, position, "phrase"))
    stripped = text.strip()
    for ch in choices:
        if stripped.startswith(ch) and (len(stripped) == 1 or not stripped[1].isalpha()):
            candidates.append((ch, 0, "start"))
        if stripped.endswith(ch) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            candidates.append((ch, len(text) - 1, "end"))
    if not candidates:
        candidates = [(ch, text.rfind(ch), "fallback") for ch in choices if ch in text]
    if not candidates:
        return ""
    return max(candidates, key=lambda c: (_PRIORITY[c[2]], c[1]))[0]


def lmms_eval_mcq(raw: str, options: Sequence[str]) -> Prediction:
    """VideoMME and MLVU (videomme/utils.py, mlvu/utils.py): `extract_mcq_answer` restricted to A-D."""
    return _prediction(raw, extract_mcq_answer(raw, "ABCD"), options, "lmms-eval-mcq")


def lmms_eval_lvb(raw: str, options: Sequence[str]) -> Prediction:
    """LongVideoBench: its prefixes removed, then the first capital A-E anywhere (lmms-eval: a random letter when
    there is none, or more than 10 words without one; here None)."""
    text = raw.strip()
    for prefix in _LVB_PREFIXES:
        text = text.replace(prefix, "")
    match = re.search(r"[ABCDE]", text)
    return _prediction(raw, match[0] if match else "", options, "lmms-eval-lvb")


def lmms_eval_egoschema(raw: str, options: Sequence[str]) -> Prediction:
    """EgoSchema (MMMU's parser): candidates "(X)", "X ", "X." in the space-padded reply; with several, the one whose
    last occurrence comes first; with none and more than 5 words, an option's "X. text" inside the reply; else
    (lmms-eval: a random letter) None."""
    choices = LETTERS[:5]
    index2ans = {LETTERS[i]: f"{LETTERS[i]}. {text}".strip() for i, text in enumerate(options[:5])}
    response = raw
    for char in ",.!?;:'":
        response = response.strip(char)
    response = f" {response} "
    candidates = [f"({ch})" for ch in choices if f"({ch})" in response]
    candidates += [f"{ch} " for ch in choices if f"{ch} " in response]
    candidates += [f"{ch}." for ch in choices if f"{ch}." in response]
    by_text = False
    if not candidates and len(response.split()) > 5:
        candidates = [ch for ch, ans in index2ans.items() if ans.lower() in response.lower()]
        by_text = True
    if not candidates:
        return _prediction(raw, "", options, "lmms-eval-egoschema")
    if len(candidates) == 1:
        chosen = candidates[0]
    elif by_text:
        chosen = min(candidates, key=lambda ch: response.lower().rfind(index2ans[ch].lower()))
    else:
        chosen = min(candidates, key=response.rfind)
    return _prediction(raw, chosen.strip("(). "), options, "lmms-eval-egoschema")
