"""Row adapters: one published row form of a benchmark → the columns its task YAML's `fields` name.

Each adapter takes a row exactly as `datasets` (or pandas) yields it — list columns may be numpy arrays —
and returns a new dict with the original columns plus normalised ones. Missing required columns raise
`ConfigError` naming the column, so `harness verify` points at the field to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from harness.core.config import ConfigError
from harness.core.records import LETTERS
from harness.core.registry import Registry

Row = dict[str, Any]
Adapter = Callable[[Mapping[str, Any]], Row]
ADAPTERS: Registry[Adapter] = Registry("row adapter")

# LongVideoBench pads unused option slots with this literal (parquet option0…option4).
LVB_PAD = "N/A"
LVB_SLOTS = 5
# "(A) text" lines that MLVU's HF parquet appends to the question field.
_MLVU_OPTION = re.compile(r"^\(([A-Z])\)\s?(.*)$")
# The GitHub MLVU JSON names the needle task findNeedle; the HF parquet calls it needle.
_MLVU_TASK_ALIASES = {"findNeedle": "needle"}


def require(row: Mapping[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if n not in row]
    if missing:
        raise ConfigError(f"required field {missing[0]!r} missing; columns present: {sorted(row)}")
    return [row[n] for n in names]


def as_list(value: Any, name: str) -> list[Any]:
    if hasattr(value, "tolist"):  # numpy arrays from parquet list columns read through pandas
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise ConfigError(f"field {name!r}: expected a list, got {type(value).__name__}")
    return list(value)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value != value  # NaN from pandas


@ADAPTERS.decorator("mlvu")
def mlvu(row: Mapping[str, Any]) -> Row:
    """MLVU: the HF parquet's `question` already holds "(A) …" lines; the GitHub JSON has a text answer.

    Options are taken from the question text (the letters the gold answer refers to), checked against
    `candidates`. Adds `question_stem`, `options`, and fills `video_name` / `task_type` / a letter
    `answer` for the GitHub form (`video`, `question_type`, answer = candidate text).
    """
    out = dict(row)
    question, candidates = require(row, "question", "candidates")
    candidates = [str(c) for c in as_list(candidates, "candidates")]
    lines = str(question).rstrip("\n").split("\n")
    first = next((i for i, line in enumerate(lines) if _MLVU_OPTION.match(line)), None)
    if first is None:  # GitHub JSON form: plain question, options only in candidates
        out["question_stem"], out["options"] = str(question), candidates
    else:
        parsed = [_MLVU_OPTION.match(line) for line in lines[first:]]
        if not all(parsed) or [m.group(1) for m in parsed] != list(LETTERS[: len(parsed)]):
            raise ConfigError(f"field 'question': option lines after line {first} are not (A), (B), … in order")
        out["question_stem"] = "\n".join(lines[:first])
        out["options"] = [m.group(2) for m in parsed]
        if sorted(out["options"]) != sorted(candidates):
            raise ConfigError("field 'candidates' does not hold the options listed in 'question'")
    if "video_name" not in out:
        out["video_name"] = require(row, "video")[0]
    if "task_type" not in out:
        out["task_type"] = require(row, "question_type")[0]
    out["task_type"] = _MLVU_TASK_ALIASES.get(str(out["task_type"]), str(out["task_type"]))
    (answer,) = require(row, "answer")
    if not _blank(answer) and str(answer) not in tuple(LETTERS[: len(out["options"])]):
        if answer not in out["options"]:
            raise ConfigError(f"field 'answer': {answer!r} is neither a letter nor one of the options")
        answer = LETTERS[out["options"].index(answer)]
    out["answer"] = None if _blank(answer) else str(answer)
    if "question_id" not in out:  # the GitHub JSON has no id: the question text is unique per video
        out["question_id"] = f"{out['video_name']}::{out['question_stem']}"
    return out


@ADAPTERS.decorator("longvideobench")
def longvideobench(row: Mapping[str, Any]) -> Row:
    """LongVideoBench: `lvb_val.json` has `candidates` (3–5); the parquet has option0…option4 padded "N/A".

    Only trailing pad slots are dropped, so `correct_choice` keeps indexing the same options. The test
    split has no `correct_choice` (or "@"): unlabelled.
    """
    out = dict(row)
    if "candidates" in row:
        options = [str(c) for c in as_list(row["candidates"], "candidates")]
    else:
        options = [str(v) for v in require(row, *(f"option{i}" for i in range(LVB_SLOTS)))]
        while options and options[-1] == LVB_PAD:
            options.pop()
    if len(options) < 2:
        raise ConfigError(f"fewer than 2 options for question {row.get('id')!r}")
    out["options"] = options
    choice = row.get("correct_choice")
    out["correct_choice"] = None if _blank(choice) or choice == "@" else int(choice)
    for name in ("duration_group", "question_category"):  # breakdown keys: required on validation
        require(row, name)
    out["starting_timestamp_for_subtitles"] = float(row.get("starting_timestamp_for_subtitles") or 0.0)
    return out


@ADAPTERS.decorator("egoschema")
def egoschema(row: Mapping[str, Any]) -> Row:
    """EgoSchema: HF rows (`option` list of 5 "A. …", `answer` "0"–"4" or null) or the original
    questions.json form (`q_uid`, "option 0"…"option 4")."""
    out = dict(row)
    if "option" not in row and "option 0" in row:
        (q_uid,) = require(row, "q_uid")
        texts = require(row, *(f"option {i}" for i in range(5)))
        out.update(question_idx=q_uid, video_idx=q_uid, option=[f"{LETTERS[i]}. {t}" for i, t in enumerate(texts)])
    require(out, "question_idx", "video_idx", "question", "option")
    answer = row.get("answer")
    out["answer"] = None if _blank(answer) else str(answer).strip()
    return out
