"""How often each answer extractor reads what a reply means: ours and lmms-eval's own functions (run in
.venv-lmms by harness/interop/lmms_oracle.py), per task, on the reply corpus (tests/data/replies.json: each reply
with the letter a careful reader takes from it, or none) and the held-out corpus written apart from the extractor
(tests/data/replies_heldout.json).

    python -m harness.interop.extractors [--corpus FILE …] [--out DIR]   (make extractor-report)

lmms-eval answers some replies with `random.choice` (LongVideoBench, EgoSchema): run over several seeds, such a
reply agrees with the intended letter only by luck, so the table counts it apart ("random") and credits its
expected agreement (1/k where a letter was intended, 0 where none was).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from harness.core.paths import REPO_ROOT
from harness.core.records import LETTERS
from harness.data.tasks import get_task
from harness.scoring.extract import EXTRACTORS

CORPUS = REPO_ROOT / "tests" / "data" / "replies.json"  # written with the extractor; pinned at 100%
HELDOUT = REPO_ROOT / "tests" / "data" / "replies_heldout.json"  # written independently, never tuned on
LMMS_PYTHON = REPO_ROOT / ".venv-lmms" / "bin" / "python"
ORACLE = Path(__file__).with_name("lmms_oracle.py")
SEEDS = 8  # lmms-eval seeds python's random once per run; 8 seeds tell a random fallback from a fixed answer


def run_oracle(cases: list[dict[str, Any]], aggregate: dict[str, list] | None = None, seeds: int = SEEDS) -> dict:
    """lmms-eval's own extraction of each case ({task, response, options, answer}) over `seeds` seeds, and its
    aggregators on `aggregate`; a clear error when the parity venv is missing."""
    if not LMMS_PYTHON.exists():
        raise FileNotFoundError(f"{LMMS_PYTHON} missing: create it with `make lmms-venv`")
    request = {"seeds": seeds, "cases": cases, "aggregate": aggregate or {}}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([str(LMMS_PYTHON), str(ORACLE)], input=json.dumps(request), capture_output=True, text=True,
                          env=env, timeout=600, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"lmms-eval oracle failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def corpus_cases(corpus: dict[str, Any]) -> list[dict[str, Any]]:
    """The corpus as oracle cases: task, reply, its option texts and the intended index (0 when none)."""
    return [{"task": r["task"], "response": r["reply"], "options": corpus["option_sets"][r["options"]],
             "answer": LETTERS.index(r["intended"]) if r["intended"] else 0} for r in corpus["replies"]]


def letter(index: int | None) -> str:
    return "" if index is None else LETTERS[index]


def agreement(corpus: dict[str, Any], oracle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per task: replies, read as intended by ours (the task's extractor) and by lmms-eval's own (expected over its
    random fallbacks), and how many replies lmms-eval answered at random."""
    table: dict[str, dict[str, Any]] = {}
    for reply, theirs in zip(corpus["replies"], oracle["cases"], strict=True):
        task = get_task(reply["task"])
        options = corpus["option_sets"][reply["options"]]
        want = reply["intended"] or ""
        row = table.setdefault(task.task, {"replies": 0, "ours": 0, "lmms_expected": 0.0, "lmms_random": 0})
        row["replies"] += 1
        row["ours"] += letter(EXTRACTORS.get(task.extractor)(reply["reply"], options).answer) == want
        preds = [p if p in LETTERS[: len(options)] else "" for p in theirs["preds"]]  # out of range: none read
        if len(set(preds)) > 1:
            row["lmms_random"] += 1
            row["lmms_expected"] += (1 / len(options)) if want else 0.0
        else:
            row["lmms_expected"] += preds[0] == want
    return table


def render(table: dict[str, dict[str, Any]]) -> str:
    lines = ["| task | replies | ours (mcq_letter) | lmms-eval (expected) | lmms-eval random fallbacks |",
             "|---|---|---|---|---|"]
    for task, row in sorted(table.items()):
        n = row["replies"]
        lines.append(f"| {task} | {n} | {100 * row['ours'] / n:.1f}% | {100 * row['lmms_expected'] / n:.1f}% | "
                     f"{row['lmms_random']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, nargs="+", default=[CORPUS, HELDOUT])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "extractors")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    parts, tables = [], {}
    for path in args.corpus:
        corpus = json.loads(path.read_text())
        tables[path.name] = table = agreement(corpus, run_oracle(corpus_cases(corpus)))
        parts.append(f"`{path.name}`: replies read as intended, per task\n\n{render(table)}\n")
    (args.out / "agreement.json").write_text(json.dumps(tables, indent=1) + "\n")
    text = ("lmms-eval 0.7.3's own extractors; a random fallback counts 1/k where a letter was intended.\n\n"
            + "\n".join(parts))
    (args.out / "agreement.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
