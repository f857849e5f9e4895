"""`harness verify` and `harness prepare` on annotation files with the published schemas and row counts.

The real files cannot be downloaded here (no network); these fixtures have the published column names,
dtypes and row counts (VideoMME 2,700; MLVU dev 2,174; LongVideoBench val 1,337; EgoSchema 5,031 / 500).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import benchdata
import pytest

from harness.cli import main
from harness.core.config import ConfigError
from harness.data.prepare import prepare, unpack
from harness.data.tasks import get_task


def verify_json(capsys, *args: str) -> dict:
    assert main(["verify", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def videomme_rows(n_videos: int) -> list[dict]:
    durations = ("short", "medium", "long")
    return [{"video_id": f"{v:03d}", "duration": durations[v % 3], "domain": "Knowledge",
             "sub_category": "Humanity & History", "url": "u", "videoID": f"yt{v:09d}", "question_id": f"{v:03d}-{k}",
             "task_type": "Counting Problem", "question": "q?", "options": ["A. a", "B. b", "C. c", "D. d"],
             "answer": "ABCD"[(v + k) % 4]} for v in range(1, n_videos + 1) for k in (1, 2, 3)]


def test_videomme_2700_rows(capsys, write_test_video, tmp_path):
    benchdata.parquet(tmp_path, "videomme/test-00000-of-00001.parquet", videomme_rows(900))
    benchdata.video(write_test_video, tmp_path, "data/yt000000001.mp4")
    benchdata.video(write_test_video, tmp_path, "data/yt000000002.mkv")
    got = verify_json(capsys, "--task", "videomme", "--data-root", str(tmp_path))
    assert got == {"task": "videomme", "rows": 2700, "scorable": 2700, "videos_present": 2, "videos_missing": 898}


def test_mlvu_dev_2174_rows_from_an_annotations_path(capsys, tmp_path):
    rows = []
    for i in range(2174):
        options = [f"o{i}a", f"o{i}b", f"o{i}c", f"o{i}d"]
        rows.append({"video_name": f"v{i % 1122}.mp4", "duration": 480.0, "question": benchdata.mlvu_question(i, options),
                     "candidates": options[::-1], "answer": "ABCD"[i % 4], "task_type": "plotQA",
                     "question_id": f"Q{i}"})
    path = benchdata.parquet(tmp_path / "elsewhere", "MLVU_dev.parquet", rows)
    got = verify_json(capsys, "--task", "mlvu", "--data-root", str(tmp_path), "--annotations", str(path))
    assert got == {"task": "mlvu", "rows": 2174, "scorable": 2174, "videos_present": 0, "videos_missing": 1122}


def test_longvideobench_1337_rows_json_and_parquet(capsys, tmp_path):
    rows = [benchdata.lvb_row(f"vid{i % 753}_{i}", ["a", "b", "c", "d", "e"][: 3 + i % 3], i % 3, 600, "S2E", 0.0)
            for i in range(1337)]
    (tmp_path / "lvb_val.json").write_text(json.dumps(rows))
    want = {"task": "longvideobench", "rows": 1337, "scorable": 1337, "videos_present": 0, "videos_missing": 753}
    assert verify_json(capsys, "--task", "longvideobench", "--data-root", str(tmp_path)) == want
    parquet = benchdata.parquet(tmp_path, "validation.parquet", [benchdata.lvb_parquet_row(r) for r in rows])
    assert verify_json(capsys, "--task", "longvideobench", "--data-root", str(tmp_path),
                       "--annotations", str(parquet)) == want


def test_egoschema_full_5031_unscorable_and_subset_500(capsys, write_test_video, tmp_path):
    uids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(5031)]
    benchdata.parquet(tmp_path, "MC/test-00000-of-00001.parquet",
                      [benchdata.ego_row(i, u, None) for i, u in enumerate(uids)])
    benchdata.parquet(tmp_path, "Subset/test-00000-of-00001.parquet",
                      [benchdata.ego_row(i, u, str(i % 5)) for i, u in enumerate(uids[:500])])
    benchdata.video(write_test_video, tmp_path, f"videos/{uids[0]}.mp4")
    full = verify_json(capsys, "--task", "egoschema_full", "--data-root", str(tmp_path))
    assert full == {"task": "egoschema_full", "rows": 5031, "scorable": 0, "videos_present": 1, "videos_missing": 5030}
    subset = verify_json(capsys, "--task", "egoschema", "--data-root", str(tmp_path))
    assert subset == {"task": "egoschema", "rows": 500, "scorable": 500, "videos_present": 1, "videos_missing": 499}


def test_text_report_and_row_count_warning(capsys, tmp_path):
    benchdata.parquet(tmp_path, "videomme/test-00000-of-00001.parquet", videomme_rows(2))
    assert main(["verify", "--task", "videomme", "--data-root", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("videomme: 6 rows parsed, 6 with a gold answer, 0 videos present, 2 missing")
    assert "as published has 2700 rows, this file 6" in err


def test_missing_required_field_is_named_and_exits_nonzero(capsys, tmp_path):
    rows = videomme_rows(2)
    for row in rows:
        del row["videoID"]
    benchdata.parquet(tmp_path, "videomme/test-00000-of-00001.parquet", rows)
    assert main(["verify", "--task", "videomme", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'videoID'" in err and len(err.strip().splitlines()) == 1
    # the LongVideoBench parquet form without its option columns
    row = {k: v for k, v in benchdata.lvb_parquet_row(benchdata.lvb_row("x_0", ["a", "b"], 0, 15, "S2E", 0.0)).items()
           if k != "option0"}
    path = benchdata.parquet(tmp_path, "lvb.parquet", [row])
    assert main(["verify", "--task", "longvideobench", "--data-root", str(tmp_path), "--annotations", str(path)]) == 2
    assert "required field 'option0' missing" in capsys.readouterr().err


def test_unreadable_or_absent_file_exits_nonzero(capsys, tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    assert main(["verify", "--task", "mlvu", "--data-root", str(tmp_path), "--annotations", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["verify", "--task", "mlvu", "--data-root", str(tmp_path)]) == 2
    assert "python -m harness prepare --task mlvu" in capsys.readouterr().err


def test_eval_without_data_prints_one_line_and_exits_2(capsys, tmp_path):
    assert main(["eval", "--task", "videomme", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "test-00000-of-00001.parquet" in err and "python -m harness prepare --task videomme" in err
    assert list(tmp_path.iterdir()) == []  # no half-made run directory


# ---------------------------------------------------------------- prepare


def test_prepare_offline_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["prepare", "--task", "videomme", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and "lmms-eval/Video-MME" in err
    with pytest.raises(ConfigError, match="not one of"):
        prepare(get_task("videomme"), tmp_path, repo="someone/Video-MME")


def test_prepare_falls_back_to_the_old_hub_name_and_unpacks(tmp_path, monkeypatch):
    """The hub is replaced by a local stand-in: lmms-eval/… is absent, lmms-lab/… serves the files."""
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError

    calls = []

    def fake_snapshot(repo_id, repo_type, local_dir, allow_patterns):
        calls.append(repo_id)
        if repo_id.startswith("lmms-eval/"):
            raise RepositoryNotFoundError("404", response=httpx.Response(404, request=httpx.Request("GET", "https://hf.co")))
        root = Path(local_dir)
        benchdata.parquet(root, "videomme/test-00000-of-00001.parquet", videomme_rows(1))
        with zipfile.ZipFile(root / "videos_chunked_01.zip", "w") as z:
            z.writestr("data/yt000000001.mp4", b"not decoded by verify")
        return local_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    root = prepare(get_task("videomme"), tmp_path)
    assert calls == ["lmms-eval/Video-MME", "lmms-lab/Video-MME"]
    assert (root / "data/yt000000001.mp4").exists() and (root / ".videos_chunked_01.zip.unpacked").exists()


def test_unpack_split_tar_once_and_refuse_escaping_zip(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("videos/a.mp4", b"a" * 3000), ("videos/b.mp4", b"b" * 5000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    for i, suffix in enumerate(("aa", "ab", "ac")):  # split in three like videos.tar.part.aa…
        (tmp_path / f"videos.tar.part.{suffix}").write_bytes(blob[i * len(blob) // 3: (i + 1) * len(blob) // 3])
    assert [p.name for p in unpack(tmp_path, ("videos.tar.part.*",))] == ["videos.tar"]
    assert (tmp_path / "videos/b.mp4").read_bytes() == b"b" * 5000
    assert unpack(tmp_path, ("videos.tar.part.*",)) == []  # done once
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../outside.txt", b"x")
    with pytest.raises(ConfigError, match="outside"):
        unpack(tmp_path, ("*.zip",))
    assert not (tmp_path.parent / "outside.txt").exists()
