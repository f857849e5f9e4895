"""Offline stand-ins of the four benchmarks in their published schemas: `videomme_mini`, `mlvu_mini`,
`longvideobench_mini`, `egoschema_mini` (the suite `long4-mini`), and `egoschema_full_mini` (answers withheld).

No benchmark video can be fetched here, so each stand-in re-shapes needle-task questions and videos (a seed of its
own; retrieval and counting over 32- and 64-frame videos at 1 fps) into its benchmark's rows, file layout and
subtitle files. The real task's YAML (included by the mini's) then reads them through the same adapter, subtitle
selection, metric (MLVU's M-Avg) and breakdowns as the published data. Each is the task's `dataset.generator`,
built on first use; a finished build leaves `mini.json` (its recipe) and is reused while that matches.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from harness.core.records import LETTERS
from harness.data.needle import NeedleConfig, ensure_needle_dataset
from harness.data.needle.questions import CATEGORIES

MINI_VERSION = 2  # bump when a stand-in's rows or layout change
MANIFEST = "mini.json"
SEEDS = {"videomme": 21, "mlvu": 22, "longvideobench": 23, "egoschema": 24}  # disjoint from needle (0), exam (13)


def _source(seed: int, root: Path) -> list[dict[str, Any]]:
    """The needle questions a stand-in is made of (8 retrieval, 8 counting; 32 and 64 frames)."""
    config = NeedleConfig(seed=seed, lengths=(32, 64), per_cell=4, kinds=("retrieval", "counting"))
    annotations = ensure_needle_dataset(root / "source", config)
    return pq.read_table(annotations).to_pylist()


def _place(root: Path, row: dict[str, Any], rel: str) -> None:
    """The question's video at `rel` under the stand-in's root (a hard link where the file system allows)."""
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    source = root / "source" / row["video"]
    if not target.exists():
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def _captions(row: dict[str, Any]) -> list[tuple[float, float, str]]:
    """Subtitle lines every 8 s of the video: narration that never names the needle."""
    return [(t, min(t + 4.0, row["duration"]), f"the scene drifts on, part {k + 1}")
            for k, t in enumerate(range(0, int(row["duration"]), 8))]


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def _built(root: Path, name: str, make: Callable[[Path, list[dict[str, Any]]], None]) -> Path:
    recipe = {"version": MINI_VERSION, "benchmark": name, "seed": SEEDS[name]}
    try:
        if json.loads((root / MANIFEST).read_text()) == recipe:
            return root
    except (OSError, ValueError):
        pass
    root.mkdir(parents=True, exist_ok=True)
    make(root, _source(SEEDS[name], root))
    (root / MANIFEST).write_text(json.dumps(recipe) + "\n")
    return root


def videomme(root: Path) -> Path:
    """VideoMME (lmms-eval/Video-MME `videomme` parquet): data/{videoID}.mp4, subtitle/{videoID}.srt."""

    def make(root: Path, source: list[dict[str, Any]]) -> None:
        rows = []
        for i, row in enumerate(source):
            yt = f"mini{i:07d}"  # an 11-character videoID, as YouTube ids are
            _place(root, row, f"data/{yt}.mp4")
            lines = _captions(row)
            (root / "subtitle").mkdir(exist_ok=True)
            (root / "subtitle" / f"{yt}.srt").write_text("".join(
                f"{k}\n{_srt_time(a)} --> {_srt_time(b)}\n<font color=\"white\" size=\".72c\">{text}</font>\n\n"
                for k, (a, b, text) in enumerate(lines, 1)))
            rows.append({"video_id": f"{i + 1:03d}", "duration": "short" if row["num_frames"] <= 32 else "medium",
                         "domain": "Knowledge" if row["kind"] == "retrieval" else "Life Record",
                         "sub_category": "Humanity & History", "url": f"https://www.youtube.com/watch?v={yt}",
                         "videoID": yt, "question_id": f"{i + 1:03d}-1",
                         "task_type": "Object Recognition" if row["kind"] == "retrieval" else "Counting Problem",
                         "question": row["question"],
                         "options": [f"{LETTERS[j]}. {o}" for j, o in enumerate(row["options"])],
                         "answer": row["answer"]})
        (root / "videomme").mkdir(exist_ok=True)
        pd.DataFrame(rows).to_parquet(root / "videomme" / "test-00000-of-00001.parquet", index=False)

    return _built(Path(root), "videomme", make)


def mlvu(root: Path) -> Path:
    """MLVU dev (sy1998/MLVU_dev parquet): the question holds "(A) …" lines, candidates the same texts shuffled."""

    def make(root: Path, source: list[dict[str, Any]]) -> None:
        rows = []
        for i, row in enumerate(source):
            task_type = "needle" if row["kind"] == "retrieval" else "count"
            name = f"{task_type}_{i}.mp4"
            _place(root, row, name)
            options = list(row["options"])
            question = row["question"] + "\n" + "".join(f"({LETTERS[j]}) {o}\n" for j, o in enumerate(options))
            rows.append({"video_name": name, "duration": float(row["duration"]), "question": question,
                         "candidates": options[i % len(options):] + options[: i % len(options)],
                         "answer": row["answer"], "task_type": task_type, "question_id": f"mini_{i}"})
        (root / "mlvu").mkdir(exist_ok=True)
        pd.DataFrame(rows).to_parquet(root / "mlvu" / "test-00000-of-00001.parquet", index=False)

    return _built(Path(root), "mlvu", make)


def longvideobench(root: Path) -> Path:
    """LongVideoBench validation (lvb_val.json): videos/{id}.mp4, subtitles/{id}_en.json."""

    def make(root: Path, source: list[dict[str, Any]]) -> None:
        rows = []
        (root / "subtitles").mkdir(exist_ok=True)
        for i, row in enumerate(source):
            vid = f"mini{i:03d}"
            _place(root, row, f"videos/{vid}.mp4")
            (root / "subtitles" / f"{vid}_en.json").write_text(json.dumps(
                [{"timestamp": [a, b], "text": text} for a, b, text in _captions(row)]))
            rows.append({"video_id": vid, "id": f"{vid}_0", "video_path": f"{vid}.mp4",
                         "subtitle_path": f"{vid}_en.json", "question": row["question"],
                         "question_wo_referring_query": row["question"], "candidates": list(row["options"]),
                         "correct_choice": LETTERS.index(row["answer"]), "position": [0],
                         "duration": float(row["duration"]), "duration_group": 15 if row["num_frames"] <= 32 else 60,
                         "question_category": "S2E" if row["kind"] == "retrieval" else "T3E",
                         "topic_category": "NP-News-Programs", "level": "L1-Perception",
                         "starting_timestamp_for_subtitles": 0.0, "view_count": 0})
        (root / "lvb_val.json").write_text(json.dumps(rows, indent=1))

    return _built(Path(root), "longvideobench", make)


def _fifth(row: dict[str, Any]) -> str:
    """EgoSchema has five options: one more distractor of the needle's own kind."""
    options = list(row["options"])
    if row["kind"] == "counting":
        return "5"
    pool = next(p for p in CATEGORIES.values() if options[0] in p)
    return next(label for label in pool if label not in options)


def egoschema(root: Path) -> Path:
    """EgoSchema (lmms-eval/egoschema parquets): five "A. …" options, videos/{uuid}.mp4; Subset with answers "0"–"4"
    (`egoschema_mini`), MC with them withheld (`egoschema_full_mini`: the submission file)."""

    def make(root: Path, source: list[dict[str, Any]]) -> None:
        rows = []
        for i, row in enumerate(source):
            uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"egoschema-mini/{i}"))
            _place(root, row, f"videos/{uid}.mp4")
            options = [*row["options"], _fifth(row)]
            rows.append({"question_idx": f"{i:05d}", "question": row["question"], "video_idx": uid,
                         "option": [f"{LETTERS[j]}. {o}" for j, o in enumerate(options)],
                         "answer": str(LETTERS.index(row["answer"]))})
        for config, answered in (("Subset", True), ("MC", False)):  # MC: the full set's form, answers withheld
            (root / config).mkdir(exist_ok=True)
            pd.DataFrame([r if answered else {**r, "answer": None} for r in rows]).to_parquet(
                root / config / "test-00000-of-00001.parquet", index=False)

    return _built(Path(root), "egoschema", make)
