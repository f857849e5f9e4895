from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from harness.core.paths import REPO_ROOT
from harness.core.records import LETTERS
from harness.data.needle import MANIFEST, NeedleConfig, dataset, ensure_needle_dataset, main, render
from harness.data.needle.questions import plan
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.video.reader import probe, read_frames

SMALL = NeedleConfig(lengths=(16, 48), per_cell=4)
GOLD = tuple(LETTERS[:4])  # every needle question has four options; a tuple, so "" or "AB" is not a member
COLUMNS = [
    "question_id", "video", "question", "options", "answer", "kind", "num_frames", "fps", "duration", "depth",
    "length_bucket", "needle_frames", "needle_times", "needle_events", "evidence_spans", "depth_bucket",
    "needle_labels",
]  # fmt: skip
NEEDLE_MIN_DIFF = 5.0  # mean |diff| (gray levels) between a needle frame and the haystack frame next to it
HAYSTACK_MAX_DIFF = 3.0  # mean |diff| between adjacent haystack frames
PEAK_LIMIT = 8 * 2**20  # traced allocations while writing a long video (~1.2 MiB measured at any length)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return ensure_needle_dataset(tmp_path_factory.mktemp("a") / "needle", SMALL)


@pytest.fixture(scope="module")
def rows(small) -> list[dict]:
    return pq.read_table(small).to_pylist()


def decode_all(root: Path, row: dict) -> np.ndarray:
    return read_frames(str(root / row["video"]), range(row["num_frames"])).pixels.astype(np.int16)


def adjacent_diffs(pixels: np.ndarray) -> np.ndarray:
    """diffs[i] = mean |frame i+1 - frame i|."""
    return np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2, 3))


def test_annotations_schema_and_consistency(small, rows):
    root = small.parent
    assert pq.read_schema(small).names == COLUMNS
    assert len(rows) == len(SMALL.kinds) * len(SMALL.lengths) * SMALL.per_cell
    assert len({r["question_id"] for r in rows}) == len(rows)
    nf = SMALL.needle_frames
    for r in rows:
        meta = probe(str(root / r["video"]))
        assert (meta.num_frames, meta.fps, meta.width, meta.height) == (r["num_frames"], r["fps"], *SMALL.size)
        assert r["length_bucket"] == str(r["num_frames"]) and r["duration"] == r["num_frames"] / r["fps"]
        events = r["needle_events"]
        assert all(end - start == nf and 0 <= start and end <= r["num_frames"] for start, end in events)
        assert r["needle_frames"] == sorted(t for start, end in events for t in range(start, end))
        assert r["needle_times"] == [start / r["fps"] for start, _ in events]
        assert r["evidence_spans"] == [[start / r["fps"], end / r["fps"]] for start, end in events]
        assert r["depth_bucket"] == (f"{r['depth']:.1f}" if r["kind"] == "retrieval" else "spread")
        assert len(r["needle_labels"]) == len(events) and 0.0 <= r["depth"] <= 1.0
        assert all(b[0] > a[1] for a, b in zip(events, events[1:])), "events overlap or touch"


def test_answers_are_valid_balanced_and_right(rows):
    for r in rows:
        assert r["answer"] in GOLD and len(r["options"]) == 4 and len(set(r["options"])) == 4
        gold = r["options"][GOLD.index(r["answer"])]
        if r["kind"] == "retrieval":
            assert r["needle_labels"] == [gold] and r["question"] == "Which of these appeared in the video?"
        elif r["kind"] == "ordering":
            assert gold == ", ".join(r["needle_labels"]) and len(set(r["needle_labels"])) == 3
            assert all(sorted(o.split(", ")) == sorted(r["needle_labels"]) for o in r["options"])
        else:
            assert int(gold) == len(r["needle_events"]) and len(set(r["needle_labels"])) == 1
            assert r["needle_labels"][0] in r["question"]
    # per_cell=4: every (kind, length) cell uses each letter exactly once
    cells = Counter((r["kind"], r["num_frames"]) for r in rows)
    for cell in cells:
        assert sorted(r["answer"] for r in rows if (r["kind"], r["num_frames"]) == cell) == list(GOLD)


def test_retrieval_depths_are_controlled(rows):
    span = {n: n - SMALL.needle_frames for n in SMALL.lengths}
    retrieval = [r for r in rows if r["kind"] == "retrieval"]
    assert {r["depth"] for r in retrieval} == set(SMALL.depths)
    for r in retrieval:
        assert r["needle_events"][0][0] == round(r["depth"] * span[r["num_frames"]])


def test_needles_stand_out_from_a_redundant_haystack(small, rows):
    root = small.parent
    for r in rows:
        diffs = adjacent_diffs(decode_all(root, r))
        visible = set(r["needle_frames"])
        haystack_pairs = [d for i, d in enumerate(diffs) if i not in visible and i + 1 not in visible]
        assert max(haystack_pairs) < HAYSTACK_MAX_DIFF, r["question_id"]
        for start, end in r["needle_events"]:
            onset = diffs[start - 1] if start > 0 else diffs[end - 1]  # entering the event, or leaving it
            assert onset > NEEDLE_MIN_DIFF, (r["question_id"], start)


def test_same_seed_same_dataset_other_seed_differs(small, rows, tmp_path):
    again = ensure_needle_dataset(tmp_path / "again", SMALL)
    assert again.read_bytes() == small.read_bytes()
    assert pq.read_table(again).equals(pq.read_table(small))
    for r in rows[:: len(rows) // 4]:
        picks = sorted({0, *r["needle_frames"], r["num_frames"] - 1})
        a = read_frames(str(small.parent / r["video"]), picks).pixels
        b = read_frames(str(again.parent / r["video"]), picks).pixels
        assert np.array_equal(a, b), r["question_id"]

    other = ensure_needle_dataset(tmp_path / "other", replace(SMALL, seed=1))
    other_rows = pq.read_table(other).to_pylist()
    assert [r["question_id"] for r in other_rows] == [r["question_id"] for r in rows]
    assert [r["options"] for r in other_rows] != [r["options"] for r in rows]
    first = read_frames(str(small.parent / rows[0]["video"]), [0]).pixels
    assert not np.array_equal(first, read_frames(str(other.parent / other_rows[0]["video"]), [0]).pixels)


def test_reused_until_the_config_changes(tmp_path):
    config = NeedleConfig(lengths=(16,), per_cell=1)
    root = tmp_path / "ds"
    annotations = ensure_needle_dataset(root, config)
    video = root / pq.read_table(annotations).to_pylist()[0]["video"]
    stamps = annotations.stat().st_mtime_ns, video.stat().st_mtime_ns
    time.sleep(0.01)
    assert ensure_needle_dataset(root, config) == annotations
    assert (annotations.stat().st_mtime_ns, video.stat().st_mtime_ns) == stamps

    changed = replace(config, seed=7)
    assert ensure_needle_dataset(root, changed) == annotations
    assert annotations.stat().st_mtime_ns != stamps[0]
    assert json.loads((root / MANIFEST).read_text())["config"]["seed"] == 7

    manifest = json.loads((root / MANIFEST).read_text())
    (root / MANIFEST).write_text(json.dumps({**manifest, "complete": False}))
    stamp = annotations.stat().st_mtime_ns
    ensure_needle_dataset(root, changed)
    assert annotations.stat().st_mtime_ns != stamp and json.loads((root / MANIFEST).read_text())["complete"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"], "staging directories left behind"


def test_interrupted_generation_leaves_nothing_reusable(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_needle_dataset(tmp_path / "ds", NeedleConfig(lengths=(16,), per_cell=1))
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        ensure_needle_dataset(tmp_path, NeedleConfig(lengths=(16,), per_cell=1))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_invalid_config_is_rejected():
    for bad in ({"lengths": (8,)}, {"depths": (1.5,)}, {"size": (127, 128)}, {"kinds": ("trivia",)}, {"per_cell": 0}):
        with pytest.raises(ValueError):
            NeedleConfig(**bad)


def test_mpeg4_fallback_writes_usable_videos(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "_video_codec", lambda: "mpeg4")
    annotations = ensure_needle_dataset(tmp_path / "ds", NeedleConfig(lengths=(16,), per_cell=1))
    for r in pq.read_table(annotations).to_pylist():
        diffs = adjacent_diffs(decode_all(annotations.parent, r))
        start = r["needle_events"][0][0]
        assert diffs[start - 1] > NEEDLE_MIN_DIFF


def test_cli(tmp_path, capsys):
    main(["--out", str(tmp_path / "cli"), "--lengths", "16", "--seed", "3", "--per-cell", "1"])
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / "cli" / "annotations.parquet"
    assert json.loads((path.parent / MANIFEST).read_text())["config"]["seed"] == 3
    assert pq.read_table(path).num_rows == 3


def test_the_exam_has_240_retrieval_questions_over_the_default_lengths_and_its_own_seed():
    """Planned from tasks/needle_exam.yaml's own generator arguments (no video is rendered)."""
    exam, default = get_task("needle_exam"), get_task("needle")
    config = NeedleConfig(**exam.dataset.generator_args)
    assert config.seed != NeedleConfig(**default.dataset.generator_args).seed
    assert exam.dataset.root == "{cache}/needle_exam" != default.dataset.root
    assert (config.lengths, config.kinds) == (NeedleConfig.lengths, NeedleConfig.kinds)
    specs = plan(config)
    cells = Counter((s.kind, s.length) for s in specs)
    assert sum(n for (kind, _), n in cells.items() if kind == "retrieval") >= 240
    assert len({cells["retrieval", n] for n in config.lengths}) == 1  # as many at every length
    assert all(cells[k, n] for k in config.kinds for n in config.lengths)  # ordering and counting too
    retrieval = [s for s in specs if s.kind == "retrieval"]
    assert Counter(s.gold for s in retrieval) == Counter({g: len(retrieval) // 4 for g in range(4)})
    assert Counter(s.depth for s in retrieval) == Counter({d: len(retrieval) // 3 for d in config.depths})


def test_the_exam_task_loads_from_its_own_root(tmp_path, monkeypatch):
    """The real task YAMLs, with the exam's videos shortened and fewer per cell so they render in a second."""
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    data = yaml.safe_load((tasks / "needle_exam.yaml").read_text())
    data["dataset"]["generator_args"].update(lengths=[16, 48], per_cell=1)
    (tasks / "needle_exam.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(tasks))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    samples = load_samples(get_task("needle_exam"))
    assert len(samples) == 3 * 2 and {s.task for s in samples} == {"needle_exam"}
    root = tmp_path / "cache" / "needle_exam"
    assert all(Path(s.video).parent == root / "videos" for s in samples)
    assert all(s.evidence_spans_s and s.breakdown["kind"] in NeedleConfig.kinds for s in samples)
    assert json.loads((root / MANIFEST).read_text())["config"]["seed"] == data["dataset"]["generator_args"]["seed"]


def generate_long(tmp_path: Path, num_frames: int) -> tuple[dict, int, float]:
    """One retrieval video of `num_frames`; returns its row, the peak traced allocation and the wall time."""
    config = NeedleConfig(lengths=(num_frames,), per_cell=1, kinds=("retrieval",), depths=(0.5,))
    ensure_needle_dataset(tmp_path / "warm-up", replace(config, lengths=(16,)))  # lazy imports, font cache
    tracemalloc.start()
    started = time.perf_counter()
    annotations = ensure_needle_dataset(tmp_path / "long", config)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = pq.read_table(annotations).to_pylist()[0]
    assert probe(str(annotations.parent / row["video"])).num_frames == num_frames
    start = row["needle_events"][0][0]
    pixels = read_frames(str(annotations.parent / row["video"]), [start - 1, start, num_frames - 1]).pixels
    assert adjacent_diffs(pixels.astype(np.int16))[0] > NEEDLE_MIN_DIFF
    return row, peak, seconds


def test_long_video_streams_with_flat_memory(tmp_path):
    row, peak, _ = generate_long(tmp_path, 600)
    assert row["needle_events"] == [[299, 301]]
    assert peak < PEAK_LIMIT


@pytest.mark.slow
def test_ten_thousand_frame_video(tmp_path):
    row, peak, seconds = generate_long(tmp_path, 10_000)
    assert row["duration"] == 10_000.0
    assert peak < PEAK_LIMIT
    print(f"10,000-frame needle video: {seconds:.1f} s, peak traced allocation {peak / 2**20:.1f} MiB")
