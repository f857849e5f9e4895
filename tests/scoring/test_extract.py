import json
from pathlib import Path

import pytest

from harness.core.config import ConfigError
from harness.data.tasks import get_task
from harness.scoring.extract import EXTRACTORS, LMMS_EVAL, extractor_name, mcq_letter, normalise

OPTIONS = ("red star", "digit 7", "word APPLE", "blue circle")
CORPUS = json.loads((Path(__file__).resolve().parents[1] / "data" / "replies.json").read_text())
FAMILIES = ("plain", "lowercase", "lead-in", "json", "markdown", "quotes", "role", "unicode", "decoder", "choice",
            "negation", "chooses", "reasoning", "option-text", "ambiguous", "unparsed", "out-of-range", "egoschema-c")


@pytest.mark.parametrize("reply", CORPUS["replies"], ids=lambda r: f"{r['options']}:{r['family']}:{r['reply'][:30]!r}")
def test_every_corpus_reply_reads_as_intended(reply):
    options = CORPUS["option_sets"][reply["options"]]
    answer = mcq_letter(reply["reply"], options).answer
    assert (None if answer is None else "ABCDEFGH"[answer]) == reply["intended"]


def test_the_corpus_covers_the_four_benchmarks_and_every_family():
    replies = CORPUS["replies"]
    assert len(replies) >= 300
    assert {r["task"] for r in replies} == {"videomme", "mlvu", "longvideobench", "egoschema"}
    assert {len(o) for o in CORPUS["option_sets"].values()} == {4, 5}
    assert set(FAMILIES) <= {r["family"] for r in replies}
    assert sum(r["intended"] is None for r in replies) >= 60  # what must stay unparsed is a real share


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("B", 1), ("(C)", 2), ("C) word APPLE", 2), ("The best answer is D", 3), ("Best option: (B) digit 7", 1),
        ("It was the word APPLE", 2),  # exactly one option text present
        ("red star or digit 7", None),  # two option texts: ambiguous, not guessed
        ("The answer is not D. It is C.", 2), ("Not (D) but (B)", 1), ("C, not B.", 2),
        ("Between E and C, I would choose C.", 2),  # E is no option of four; C is chosen
    ],
)
def test_mcq_letter(raw, expected):
    prediction = mcq_letter(raw, OPTIONS)
    assert prediction.answer == expected
    assert prediction.raw == raw and prediction.extractor == "mcq_letter"


def test_normalise_strips_what_carries_no_answer():
    assert normalise('```json\n{"answer": "Ｂ"}\n```') == "B"
    assert normalise("<|im_start|>assistant\n**C**。\u200b") == "C."
    assert normalise("<think>maybe A</think>✅ D") == "D"


def test_mcq_letter_is_deterministic():
    assert {mcq_letter("zzz qq", OPTIONS).answer for _ in range(20)} == {None}


def test_extractor_names_resolve_per_task():
    assert extractor_name(get_task("videomme")) == "mcq_letter"
    assert extractor_name(get_task("videomme"), LMMS_EVAL) == "lmms-eval-mcq"
    assert extractor_name(get_task("longvideobench"), LMMS_EVAL) == "lmms-eval-lvb"
    assert extractor_name(get_task("egoschema"), LMMS_EVAL) == "lmms-eval-egoschema"
    for name in ("lmms-eval-mcq", "lmms-eval-lvb", "lmms-eval-egoschema"):
        assert EXTRACTORS.get(name)("B", OPTIONS).answer == 1
    with pytest.raises(ConfigError, match="unknown extractor 'regex'.*valid: .*lmms-eval.*mcq_letter"):
        extractor_name(get_task("videomme"), "regex")


def test_the_held_out_corpus_reads_mostly_as_intended():
    """Replies written independently of the extractor (never tuned on; labels are their author's): 149/160 when
    last measured. The misses are paraphrases no text match can read (unparsed, never a wrong letter) and three
    hedged or truncated replies; the agreement per task beside lmms-eval's is `make extractor-report`."""
    heldout = json.loads((Path(__file__).resolve().parents[1] / "data" / "replies_heldout.json").read_text())
    agree = sum((None if (a := mcq_letter(r["reply"], heldout["option_sets"][r["options"]]).answer) is None
                 else "ABCDE"[a]) == r["intended"] for r in heldout["replies"])
    assert len(heldout["replies"]) == 160 and agree >= 144, agree  # >= 90%
