import pytest

from harness.scoring.extract import mcq_letter

OPTIONS = ("red star", "digit 7", "word APPLE", "blue circle")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("B", 1),
        ("B.", 1),
        ("(C)", 2),
        ("C) word APPLE", 2),
        ("The best answer is D", 3),
        ("Answer: A", 0),
        ("Best option: (B) digit 7", 1),
        ("I think the answer is (D).", 3),
        ("It was the word APPLE", 2),  # exactly one option text present
        ("", None),
        ("no idea", None),
        ("E", None),  # not an option of a 4-way question
        ("red star or digit 7", None),  # two option texts: ambiguous, not guessed
    ],
)
def test_mcq_letter(raw, expected):
    prediction = mcq_letter(raw, OPTIONS)
    assert prediction.answer == expected
    assert prediction.raw == raw


def test_mcq_letter_is_deterministic():
    assert {mcq_letter("zzz qq", OPTIONS).answer for _ in range(20)} == {None}
