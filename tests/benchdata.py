"""Fixtures in each benchmark's exact published schema (column names and dtypes), with real mp4 files.

Every builder takes the `write_test_video` factory and a data root, and returns the root. Schemas are those of the dataset cards (tasks/_videomme.yaml, _mlvu.yaml, _longvideobench.yaml,
_egoschema.yaml). List columns are parquet list<string>; pandas reads them back as numpy arrays.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

VIDEO_FRAMES, VIDEO_FPS = 16, 8.0  # 2-second clips: frame i at i/8 s


def video(write: Callable, root: Path, rel: str) -> None:
    """A tiny real video at root/rel (an absolute name: `write_test_video` joins it onto its tmp_path)."""
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    write(name=str((root / rel).resolve()), num_frames=VIDEO_FRAMES, fps=VIDEO_FPS)


def parquet(root: Path, rel: str, rows: list[dict]) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


# VideoMME: 4 videos (.mp4, .mkv, .MP4 and one missing), 5 questions.
VIDEOMME = [
    # (video_id, videoID, ext, duration, domain, task_type, [question answers])
    ("001", "aaaaaaaaaaa", ".mp4", "short", "Knowledge", "Counting Problem", ["A", "C"]),
    ("002", "bbbbbbbbbbb", ".mkv", "medium", "Sports Competition", "OCR Problems", ["B"]),
    ("003", "ccccccccccc", ".MP4", "long", "Knowledge", "Counting Problem", ["D"]),
    ("004", "ddddddddddd", None, "long", "Life Record", "Temporal Reasoning", ["A"]),  # video missing
]
# SRT for the first video (VideoMME's <font> markup); frames sit at k/8 s, k < 16.
VIDEOMME_SRT = """1
00:00:00,000 --> 00:00:00,500
<font color="white" size=".72c">hello there</font>

2
00:00:00,500 --> 00:00:01,000
<font color="white" size=".72c">general idea</font>

3
00:00:05,000 --> 00:00:06,000
<font color="white" size=".72c">after the end</font>
"""


def videomme(write: Callable, root: Path) -> Path:
    rows = []
    for video_id, yt, ext, duration, domain, task_type, answers in VIDEOMME:
        if ext:
            video(write, root, f"data/{yt}{ext}")
        for k, answer in enumerate(answers, 1):
            rows.append({
                "video_id": video_id, "duration": duration, "domain": domain, "sub_category": "Humanity & History",
                "url": f"https://www.youtube.com/watch?v={yt}", "videoID": yt, "question_id": f"{video_id}-{k}",
                "task_type": task_type, "question": f"How many things in video {video_id}, question {k}?",
                "options": ["A. One.", "B. Two.", "C. Three.", "D. Four."], "answer": answer,
            })
    (root / "subtitle").mkdir(exist_ok=True)
    (root / "subtitle" / "aaaaaaaaaaa.srt").write_text(VIDEOMME_SRT)
    parquet(root, "videomme/test-00000-of-00001.parquet", rows)
    return root


# MLVU dev (sy1998/MLVU_dev): the question holds "(A) …" lines; candidates are the same texts shuffled.
MLVU = [  # (question_id, task_type, options in letter order, candidates order, answer)
    ("Q0", "needle", ["red car", "blue bus", "green tram", "white van"], [2, 0, 3, 1], "A"),
    ("Q1", "needle", ["a dog", "a cat", "a cow", "a hen"], [1, 3, 0, 2], "C"),
    ("Q2", "count", ["1", "2", "3", "4"], [3, 2, 1, 0], "B"),
    ("Q3", "plotQA", ["he runs", "he sits", "he eats", "he sleeps"], [0, 1, 2, 3], "D"),
]


def mlvu_question(i: int, options: list[str]) -> str:
    return f"What happens in clip {i}?\n" + "".join(f"({'ABCD'[j]}) {o}\n" for j, o in enumerate(options))


def mlvu(write: Callable, root: Path) -> Path:
    rows = []
    for i, (qid, task_type, options, order, answer) in enumerate(MLVU):
        name = f"{task_type}_{i}.mp4"
        video(write, root, name)
        rows.append({"video_name": name, "duration": float(VIDEO_FRAMES / VIDEO_FPS),
                     "question": mlvu_question(i, options), "candidates": [options[j] for j in order],
                     "answer": answer, "task_type": task_type, "question_id": qid})
    parquet(root, "mlvu/test-00000-of-00001.parquet", rows)
    return root


# LongVideoBench validation (lvb_val.json form): 5, 4 and 3 candidates; correct_choice 0-based.
LVB = [  # (id, candidates, correct_choice, duration_group, question_category, subtitle offset)
    ("v1_0", ["ant", "bee", "cat", "dog", "eel"], 4, 15, "S2E", 0.0),
    ("v2_0", ["one", "two", "three", "four"], 1, 60, "T3O", 1.0),
    ("v3_0", ["yes", "no", "maybe"], 0, 600, "S2E", 0.0),
]
# The two subtitle JSON forms LongVideoBench ships.
LVB_SUBTITLES = {
    "v1_en.json": [{"timestamp": [0.0, 0.8], "text": "first words"}, {"timestamp": [9.0, 10.0], "text": "too late"}],
    # offset 1.0 s: 1.5–2.0 s becomes 0.5–1.0 s, widened (< 1 s) to 0.25–1.25 s; 2.0–2.2 s becomes 1.0–1.2 s,
    # widened to 0.6–1.6 s; 0.0–0.9 s becomes -1.0–-0.1 s, widened to -1.05–-0.05 s: before every frame
    "v2_en.json": [{"start": "00:00:01.5", "end": "00:00:02.0", "line": "shifted line"},
                   {"start": "00:00:02.0", "end": "00:00:02.2", "line": "short line"},
                   {"start": "00:00:00.0", "end": "00:00:00.9", "line": "before the clip"}],
}


def lvb_row(lid: str, candidates: list[str], choice: int, group: int, category: str, offset: float) -> dict:
    vid = lid.split("_")[0]
    return {"video_id": vid, "id": lid, "video_path": f"{vid}.mp4", "subtitle_path": f"{vid}_en.json",
            "question": f"In the clip {vid}, which one appears?", "question_wo_referring_query": "Which one appears?",
            "candidates": candidates, "correct_choice": choice, "position": [1, 2], "duration": 2.0,
            "duration_group": group, "question_category": category, "topic_category": "NP-News-Programs",
            "level": "L1-Perception", "starting_timestamp_for_subtitles": offset, "view_count": 10}


def lvb_parquet_row(row: dict) -> dict:
    """The HF parquet form of a lvb_val.json row: option0…option4 padded with "N/A"."""
    out = {k: v for k, v in row.items() if k not in ("candidates", "question_wo_referring_query", "position", "level",
                                                      "view_count")}
    out.update({f"option{i}": row["candidates"][i] if i < len(row["candidates"]) else "N/A" for i in range(5)})
    return out


def longvideobench(write: Callable, root: Path) -> Path:
    rows = [lvb_row(*spec) for spec in LVB]
    for row in rows:
        video(write, root, f"videos/{row['video_path']}")
    (root / "subtitles").mkdir(exist_ok=True)
    for name, entries in LVB_SUBTITLES.items():
        (root / "subtitles" / name).write_text(json.dumps(entries))
    (root / "lvb_val.json").write_text(json.dumps(rows))
    parquet(root, "validation-00000-of-00001.parquet", [lvb_parquet_row(r) for r in rows])
    return root


# EgoSchema: Subset (answers "0"–"4") and the full MC config (answer null); one question per clip.
EGO_UIDS = ["0074f737-11cb-497d-8d07-77c3a8127391", "00b9a0de-c59e-49cb-a127-6081e2fb8c8e",
            "00f93e1e-cf4e-4835-88b4-4ad68216e86f"]


def ego_row(i: int, uid: str, answer: str | None) -> dict:
    return {"question_idx": f"{i:05d}", "question": f"What is C doing overall in clip {i}?", "video_idx": uid,
            "option": [f"{'ABCDE'[j]}. option {j} of {i}." for j in range(5)], "answer": answer}


def egoschema(write: Callable, root: Path) -> Path:
    for uid in EGO_UIDS[:2]:
        video(write, root, f"videos/{uid}.mp4")
    video(write, root, f"videos/{EGO_UIDS[2]}.MP4")
    parquet(root, "Subset/test-00000-of-00001.parquet",
            [ego_row(i, uid, str(a)) for i, (uid, a) in enumerate(zip(EGO_UIDS, [4, 0, 2], strict=True))])
    parquet(root, "MC/test-00000-of-00001.parquet", [ego_row(i, uid, None) for i, uid in enumerate(EGO_UIDS)])
    return root
