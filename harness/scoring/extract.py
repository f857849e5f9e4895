"""Answer extractors: a model's reply → 0-based option index, deterministically, never a random guess.

`mcq_letter` reads a reply the way a careful human reader does, in this priority:
1. an explicit final choice — "the answer is X", "I would choose X", "X fits better", "not Y, it is X",
   `{"answer": "X"}`, `\\boxed{X}` (the last one wins: reasoning comes before the conclusion);
2. a reply that opens with a letter — "B", "(C)", "D. text", "C, not B";
3. one standalone option letter anywhere, once markup, quotes, JSON, role prefixes, full-width forms, CJK
   punctuation and zero-width characters are gone, and letters that are negated ("not D"), an article ("A video
   shows…") or a subject the options themselves use (EgoSchema's "C" = camera wearer: "C cooks") are set aside;
   two different letters without a choice between them ("A or B", "B/E") are ambiguous;
4. the text of exactly one option.
Anything else is None (scored wrong, status `unparsed`). lmms-eval's own extractors, for parity runs, are in
harness/scoring/lmms_extract.py; the reply corpus tests/data/replies.json pins the behaviour (100%).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence

from harness.core.records import LETTERS, Prediction
from harness.core.registry import Registry

Extractor = Callable[[str, Sequence[str]], Prediction]
EXTRACTORS: Registry[Extractor] = Registry("answer extractor")
EXTRACTORS.register("lmms-eval-mcq", "harness.scoring.lmms_extract:lmms_eval_mcq")
EXTRACTORS.register("lmms-eval-lvb", "harness.scoring.lmms_extract:lmms_eval_lvb")
EXTRACTORS.register("lmms-eval-egoschema", "harness.scoring.lmms_extract:lmms_eval_egoschema")
LMMS_EVAL = "lmms-eval"  # the name that means "this task's lmms-eval extractor" (TaskSpec.lmms_eval_extractor)

VERSION = 2  # 1: first letter in a fixed pattern order (issue 14 measured it: ~3 replies in 4 read right)

# ---------------------------------------------------------------- normalising the reply

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
# NFKC already maps full-width forms (Ｂ, （, ：, ，); these CJK marks have no compatibility form
_CJK = str.maketrans({"。": ".", "、": ",", "「": '"', "」": '"', "『": '"', "』": '"', "【": "[", "】": "]",
                      "“": '"', "”": '"', "‘": "'", "’": "'", "《": '"', "》": '"'})
_NOT_APPLICABLE = re.compile(r"(?<![A-Za-z])N/A(?![A-Za-z])", re.I)  # not the letter A
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)```", re.S)
_ROLE = re.compile(r"(?:<\|im_start\|>\s*assistant|<\|assistant\|>|###\s*(?:assistant|response)\s*:?|"
                   r"\b(?:assistant|gpt|bot)\s*(?::|\n))", re.I)
_NEW_TURN = re.compile(r"<\|im_end\|>|<\|im_start\|>|</s>|^[ \t]*(?:question|user|human|###\s*(?:instruction|human|user))"
                       r"\s*:|\b(?:USER|Human):", re.M | re.I)
_MARKUP = re.compile(r"\*\*|__|`|^[ \t]*#+[ \t]*|^[ \t]*>[ \t]*|^[ \t]*[-*•+][ \t]+", re.M)
_JSON_KEYS = ("answer", "final_answer", "choice", "option", "prediction", "pred", "letter", "selected_option")


def normalise(reply: str) -> str:
    """The reply without what carries no answer: zero-width characters, full-width forms, reasoning blocks, code
    fences, JSON wrapping, role prefixes (a leaked chat template: the text after the first assistant marker, up
    to any turn the model invented after its answer), markdown and pictographs (✅)."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", reply)).translate(_CJK)
    text = _NOT_APPLICABLE.sub(" not applicable ", _THINK.sub(" ", text))
    text = text.split("<think>")[0]  # reasoning cut off before its end holds no answer
    text = _FENCE.sub(lambda m: m.group(1), text)
    role = _ROLE.search(text)
    if role:
        text = text[role.end():]
    turn = _NEW_TURN.search(text)
    if turn and text[: turn.start()].strip():  # a turn the model went on to invent is not its answer
        text = text[: turn.start()]
    text = _json_answer(text.strip())
    text = _MARKUP.sub("", text)
    return "".join(" " if unicodedata.category(ch) in ("So", "Sk", "Cs", "Co") else ch for ch in text).strip()


def _json_answer(text: str) -> str:
    """The answer field of a JSON object reply (`{"answer": "B"}`), else the text unchanged."""
    if not text.startswith(("{", '"')):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict):
        for key, field in value.items():
            if str(key).lower() in _JSON_KEYS and isinstance(field, str):
                return field.strip()
        return text
    return value.strip() if isinstance(value, str) else text


# ---------------------------------------------------------------- letters and what surrounds them

_OPEN, _CLOSE = r"[\(\[\"'{<]{0,3}", r"[\)\]\"'}>]{0,3}"  # bounded: a run of brackets costs nothing
_LETTER = rf"{_OPEN}(?P<l>[A-Za-z]){_CLOSE}(?![A-Za-z0-9])"
# what may follow the letter of an explicit choice ("the answer is C." / "C because…"), so that "the answer is a
# dog" or "the answer is A video…" is not read as a letter
_ENDS = (r"(?!\s*(?:,|/|&|\band\b|\bor\b)\s*[\(\[\"']?[A-Z](?![A-Za-z0-9]))"  # not the first of a list: "A, B"
         r"(?=\s*$|\s*[.,;:!?)\]\"'\n]|\s+(?:because|since|as|which|given|based|due|here|now)\b|\s+[-–—])")
_VERDICT = (r"(?:correct|right|best|better|(?:most|more)\s+(?:likely|accurate|appropriate|plausible|suitable|"
            r"fitting|consistent))")
# rank 2: a stated answer; rank 1: a bare "option X" / "choice X" (discussion also says "Option A: …")
_EXPLICIT: tuple[tuple[int, re.Pattern[str]], ...] = tuple((rank, re.compile(p, re.I)) for rank, p in (
    (2, r"(?<!wrong\s)(?<!incorrect\s)(?<!false\s)\b(?:answer|(?:correct|right|best|final|most\s+\w+)\s+"
        r"(?:option|choice))\b[\"']?(?:\s*(?:is|would\s+be|should\s+be|will\s+be|must\s+be|=|:|-|–|—))?\s*"
        r"(?:option\s+|choice\s+|letter\s+)?" + _LETTER + _ENDS),
    (2, r"\b(?:choose|chose|select|pick|go\s+with|going\s+with|opt\s+for)\s+(?:option\s+|choice\s+|answer\s+)?"
        + _LETTER + _ENDS),
    (2, r"\b(?:it\s+is|it's|it\s+must\s+be|so|thus|therefore|hence)(?:\s*,)?\s*(?:option\s+)?" + _LETTER + _ENDS),
    (2, r"\b(?:actually|wait|instead|correction|on\s+second\s+thought|rather|no)\b[,:.!]?\s*(?:it'?s\s+|it\s+is\s+)?"
        r"(?:option\s+)?" + _LETTER + _ENDS),  # a self-correction: "A... wait, actually C.", "B? No, C."
    (2, rf"(?<![A-Za-z0-9]){_LETTER}\s+(?:is|seems|looks|appears)\s+(?:to\s+be\s+)?(?:the\s+)?{_VERDICT}\b"),
    (2, rf"(?<![A-Za-z0-9]){_LETTER}\s+(?:fits|matches|works|suits)\s+(?:\w+\s+)?(?:better|best)\b"),
    (2, r"\\boxed\{\s*(?:\\text\{)?\s*(?P<l>[A-Za-z])\s*\}?\s*\}"),
    (2, r"(?:答案|答)\s*(?:是|为|:)?\s*" + _OPEN + r"(?P<l>[A-Za-z])"),
    (1, r"\b(?:option|choice)\b\s*(?:is|:)?\s*" + _LETTER + _ENDS),
))
_NEGATED_BEFORE = re.compile(r"(?:\bnot|n't|\bnever|\brather\s+than|\binstead\s+of|\bexcept|\bother\s+than|"
                             r"\bexclud\w*|\beliminat\w*|\brule\s+out)\s+(?:(?:choose|select|pick|say|go\s+with)\s+)?"
                             r"(?:option\s+|choice\s+|answer\s+)?" + _OPEN + r"$", re.I)
_NEGATED_AFTER = re.compile(_CLOSE + r"(?:\s+(?:is|seems|looks|appears)\s+(?:not\b|incorrect|wrong|false|unlikely|"
                            r"less\s+likely|implausible)|\s*:\s*(?:does\s+not|doesn't|no\b|not\b|incorrect|wrong))",
                            re.I)  # "D is wrong", "Option B: does not match"
# after "A" these say it is a letter, not the article: "A or B", "A because…"
_CONNECTIVES = frozenset("or and nor but vs versus because since as is was seems fits looks would could "
                         "should might matches".split())
_LISTING = frozenset("or and nor but vs versus".split())  # all that makes a subject letter ("C or D") a letter
_APPOSITIVE = re.compile(r", (?:the|a|who|our)\b")  # "C, the camera wearer, …"
_TOKEN = re.compile(r"(?<![A-Za-z0-9'])(?P<l>[A-Z])(?P=l)*(?![A-Za-z0-9'])")  # "C", and "DDDD" (a stuck decoder)
_LEADING = re.compile(rf"^{_OPEN}(?P<l>[A-Za-z]){_CLOSE}(?=$|[\s.,:;)\]!?-])")
_LIST_LABEL = re.compile(rf"^[ \t]*{_OPEN}(?P<l>[A-Z])(?:[\).:]|[ \t]*$)", re.M)  # "(A) …", "B." or "C" alone
_CORRECTION = re.compile(r"\b(?:wait|actually|correction|on\s+second\s+thought|no,)", re.I)


def _next_word(text: str, end: int) -> str:
    """The lowercase word one space after position `end` ("" when none): "A video", not "(A) the"."""
    match = re.match(r" ([a-z][a-z']*)", text[end:])
    return match.group(1) if match else ""


class _Reader:
    """One reply against one question's options."""

    def __init__(self, text: str, options: Sequence[str]) -> None:
        self.valid = LETTERS[: len(options)]
        # letters the options use as words (EgoSchema: "C picks up the cup"): followed by a verb they are a subject
        self.subjects = {ch for ch in self.valid
                         if sum(bool(re.search(rf"(?<![A-Za-z]){ch}(?![A-Za-z])", o)) for o in options) >= 2}
        self.matched, self.text = _mask_options(text, options)
        # another option letter right after the first, however joined: "A or B", "B/E", "A, B", "A B C D"
        self.pair = re.compile(_CLOSE + rf"\s*(?:(?:,|/|&|\bor\b|\band\b)\s*)?{_OPEN}[{self.valid}](?![A-Za-z0-9])")

    def letter(self, ch: str, start: int, end: int, explicit: bool = False) -> int | None:
        """The option index of letter `ch` at [start, end), or None when it is not an answer there."""
        upper = ch.upper()
        if upper not in self.valid:
            return None
        word = _next_word(self.text, end)
        if ch.islower():  # lowercase only in an explicit choice, and never "a" (the article: "is a …")
            if not explicit or ch == "a":
                return None
        elif not explicit and ((ch == "A" and word and word not in _CONNECTIVES) or (ch in self.subjects and (
                (word and word not in _LISTING) or _APPOSITIVE.match(self.text, end)))):
            return None  # "A video shows…", EgoSchema's "C opens the door" / "C is in the kitchen"
        if _NEGATED_BEFORE.search(self.text[max(0, start - 40): start]) or _NEGATED_AFTER.match(self.text[end:]):
            return None
        return LETTERS.index(upper)

    def explicit(self) -> int | None:
        found: list[tuple[int, int, int]] = []  # (rank, position, index)
        for rank, pattern in _EXPLICIT:
            for match in pattern.finditer(self.text):
                index = self.letter(match.group("l"), match.start("l"), match.end("l"), explicit=True)
                if index is not None:
                    found.append((rank, match.start("l"), index))
        if not found:
            return None
        top = max(found)
        if top[0] == 1 and len({index for rank, _, index in found if rank == 1}) > 1:
            return None  # "Option A: … Option B: …" discusses the options; it does not choose one
        return top[2]

    def leading(self) -> int | None:
        match = _LEADING.match(self.text)
        if not match or self.pair.match(self.text, match.end("l")):
            return None
        correction = _CORRECTION.search(self.text, match.end("l"))
        if correction:  # "B. Wait, no — … C.": the opening letter was taken back for the one after it, if any
            after = {self.letter(m.group("l"), m.start(), m.end()) for m in _TOKEN.finditer(self.text, correction.end())}
            return (after - {None}).pop() if len(after - {None}) == 1 else None
        if len({m.group("l") for m in _LIST_LABEL.finditer(self.text)}) > 1:
            return None  # "(A) …\n(B) …": the options echoed as a list, not a choice
        ch, rest = match.group("l"), self.text[match.end("l"):]
        # lowercase names a letter as the whole reply ("b", "(b)") or as a list label ("a) text")
        if ch.islower() and (not rest.strip(" .)]:\"'\n") or rest.startswith(")")):
            ch = ch.upper()
        return self.letter(ch, match.start("l"), match.end("l"))

    def standalone(self) -> int | None:
        letters = {self.letter(m.group("l"), m.start(), m.end()) for m in _TOKEN.finditer(self.text)} - {None}
        return letters.pop() if len(letters) == 1 else None

    def option_text(self) -> int | None:
        return self.matched[0] if len(self.matched) == 1 else None


def _mask_options(text: str, options: Sequence[str]) -> tuple[list[int], str]:
    """The options whose full text the reply contains (longest first, so "red car" beats "red"), and the reply
    with those texts blanked: an option's own words ("C cleans the dishes", "A man…") are not letters."""
    folded = re.sub(r"[ \t]+", " ", text)
    matched = []
    for i in sorted(range(len(options)), key=lambda i: -len(options[i])):
        option = " ".join(unicodedata.normalize("NFKC", options[i]).split()).rstrip(".")
        if not option:
            continue
        if len(option) < 3:  # a short option ("2", "no") counts only as the whole reply
            if folded.strip(" .\"'").lower() == option.lower():
                matched.append(i)
            continue
        pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(option)}(?![A-Za-z0-9])", re.I)
        found = list(pattern.finditer(folded))
        if any(not _NEGATED_BEFORE.search(folded[max(0, m.start() - 40): m.start()]) for m in found):
            matched.append(i)  # "it's not red, … it is green": only green is offered as the answer
        if found:
            folded = pattern.sub("\n", folded)  # a line break: what follows the letter of "B. <option text>"
    if not matched:  # the reply is a fragment of exactly one option: "C picks up a knife"
        fragment = " ".join(folded.strip(" .,;:!?\"'\n").split()).lower()
        if len(fragment.split()) >= 3:
            inside = [i for i, o in enumerate(options) if fragment in " ".join(o.split()).lower()]
            matched = inside if len(inside) == 1 else []
    return matched, folded


def extractor_name(task, name: str | None = None) -> str:
    """The registered extractor a run of `task` uses: `name` (default: the task's own), "lmms-eval" resolved to
    the task's lmms-eval-compatible one; an unknown name is a ConfigError naming the valid ones."""
    from harness.core.config import ConfigError

    name = name or task.extractor
    if name == LMMS_EVAL:
        if not task.lmms_eval_extractor:
            raise ConfigError(f"task {task.task}: extractor {LMMS_EVAL!r} but the task names no lmms_eval_extractor "
                              f"({task.source}); valid extractors: {', '.join(sorted(EXTRACTORS))}")
        name = task.lmms_eval_extractor
    if name not in EXTRACTORS:
        raise ConfigError(f"task {task.task}: unknown extractor {name!r}; valid: "
                          f"{', '.join(sorted([*EXTRACTORS, LMMS_EVAL]))}")
    return name


@EXTRACTORS.decorator("mcq_letter")
def mcq_letter(raw: str, options: Sequence[str]) -> Prediction:
    """The option the reply chooses (module docstring: explicit choice, leading letter, one standalone letter,
    one option's text), or None."""
    reader = _Reader(normalise(raw), options)
    for step in (reader.explicit, reader.leading, reader.standalone, reader.option_text):
        answer = step()
        if answer is not None:
            return Prediction(raw=raw, answer=answer, extractor="mcq_letter")
    return Prediction(raw=raw, answer=None, extractor="mcq_letter")
