"""The needle task run offline with W&B, then the offline run's files read back: config, live series,
summary keys, the samples table with frame strips, breakdown tables and plots; no API key anywhere."""

import json
import os
import struct
import time
from pathlib import Path

import pytest
from PIL import Image

from harness.evaluate import EvalRequest, evaluate
from harness.run.config import RunnerConfig
from harness.video.reader import probe

FAKE_KEY = "local-0123456789abcdef0123456789abcdef01234567"  # shaped like a W&B key; must never be written


def wandb_records(path: Path) -> list:
    """Protobuf records of a run-*.wandb file (LevelDB log format: 32 KiB blocks of crc|len|type chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, block, pending, records = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer too small for a header: padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # FULL or FIRST
            pending = chunk
        else:  # MIDDLE or LAST
            pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def settled_records(log: Path, wait_s: float = 30.0) -> list:
    """`run.finish()` returns before wandb-core has written the log's last records (seen under CI load as a
    torn tail), so read until it parses and ends with the run's `exit` record; a log that stays corrupt or
    never gets its exit record fails the test after `wait_s`."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            records = wandb_records(log)
            if records and records[-1].WhichOneof("record_type") == "exit":
                return records
        except DecodeError:
            pass
        if time.monotonic() > deadline:
            return wandb_records(log)  # raises on corruption; otherwise the missing records fail the asserts
        time.sleep(0.5)


def read_offline_run(run: Path) -> dict:
    (log,) = run.glob("run-*.wandb")
    config, summary, history, group = {}, {}, set(), None
    for record in settled_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            group = record.run.run_group
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.summary.update})
        elif kind == "history":
            history.update(item.key or "/".join(item.nested_key) for item in record.history.item)
    return {"config": config, "summary": summary, "history": history, "group": group}


@pytest.fixture(scope="module")
def wandb_run(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("wandb-runs")
    old = os.environ.get("WANDB_API_KEY")
    os.environ["WANDB_API_KEY"] = FAKE_KEY
    try:
        outcome = evaluate(EvalRequest(task="needle", model="tiny-uniform", limit=4, out=str(out), group="cmp-test",
                                       runner=RunnerConfig(workers=2)))
    finally:
        if old is None:
            os.environ.pop("WANDB_API_KEY")
        else:
            os.environ["WANDB_API_KEY"] = old
    return outcome, read_offline_run(Path(outcome.wandb_dir))


def test_config_holds_method_parameters_protocol_and_versions(wandb_run):
    _, run = wandb_run
    config = run["config"]
    assert run["group"] == "cmp-test" and config["group"] == "cmp-test"
    assert config["model_spec"]["selector"] == {"name": "uniform", "args": {"n": 16}}
    protocol = config["protocol"]
    assert protocol["sampler"]["name"] == "uniform" and protocol["sampler"]["code_sha"]
    assert protocol["extractor"]["name"] == "mcq_letter" and protocol["extractor"]["code_sha"]
    assert protocol["prompt"]["profile"] == "lmms-eval" and len(protocol["prompt"]["sha"]) == 10
    assert config["versions"]["packages"]["torch"] == "2.14.1" and "sha" in config["versions"]["git"]


def test_live_series_and_summary_keys(wandb_run):
    outcome, run = wandb_run
    assert {"samples_done", "running_accuracy", "samples_per_s", "frames_per_s", "ttft_s", "peak_memory_mb"} \
        <= run["history"]
    summary = run["summary"]
    for key in ("metrics/accuracy", "metrics/accuracy_stderr", "metrics/breakdowns/kind/retrieval/accuracy",
                "cost/samples_per_s", "cost/latency_p95_s", "cost/ttft_mean_s", "cost/visual_tokens_mean",
                "cost/text_tokens_mean", "cost/generated_tokens_mean", "cost/peak_memory_mb",
                "cost/needle_retention"):
        assert key in summary, key
    assert summary["metrics/n"] == 4 and summary["cost/visual_tokens_mean"] == 257
    assert summary["cost/ttft_mean_s"] == pytest.approx(outcome.summary.cost["ttft_mean_s"])


def test_report_panels_read_keys_the_run_has(wandb_run):
    from harness.results.compare import REPORT_PANELS

    _, run = wandb_run
    for _, title, x, ys in REPORT_PANELS:
        for key in [k for k in (x, *ys) if k is not None]:
            assert key in run["summary"] or key in run["history"], (title, key)
    assert "run_id" in run["config"]  # the report's runset filters on Config('run_id')


def test_samples_table_with_frame_strips(wandb_run):
    outcome, run = wandb_run
    media = Path(outcome.wandb_dir) / "files" / "media"
    (table_file,) = media.glob("table/samples_*.table.json")
    table = json.loads(table_file.read_text())
    columns = table["columns"]
    assert {"id", "status", "visual_tokens", "text_tokens", "generated_tokens", "n_frames_decoded", "frame_indices",
            "peak_rss_mb", "ttft_s", "time/llm_prefill", "breakdown/length_bucket", "frames"} <= set(columns)
    assert len(table["data"]) == 4
    with_strip = [row for row in table["data"] if row[columns.index("frames")] is not None]
    strips = sorted(media.glob("images/frames/*.png"))
    assert len(with_strip) == len(strips) == 4
    video = probe(str(next(Path(outcome.summary.config["data_root"]).glob("videos/*.mp4"))))
    tile = round(video.width * 48 / video.height) // 2 * 2  # thumbnails 48 px high, aspect kept
    for path in strips:  # 16 kept frames side by side, 2 px gaps
        assert Image.open(path).size == (16 * tile + 15 * 2, 48)


def test_breakdown_tables_and_plots(wandb_run):
    outcome, _ = wandb_run
    media = Path(outcome.wandb_dir) / "files" / "media"
    for key in ("kind", "length_bucket", "depth_bucket"):
        (path,) = media.glob(f"table/breakdown/{key}_*.table.json")
        table = json.loads(path.read_text())
        assert table["columns"][:3] == [key, "n", "accuracy"] and "needle_retention" in table["columns"]
    for name in ("latency_by_stage", "needle_accuracy", "needle_retention"):
        (png,) = media.glob(f"images/plots/{name}_*.png")
        assert png.stat().st_size > 5000
    labels = json.loads((outcome.run_dir / "plots" / "plots.json").read_text())
    assert labels["needle_retention"]["ylabel"] == "video length (frames)"
    assert labels["needle_retention"]["xlabel"] == "needle depth (fraction of video)"


def test_no_api_key_in_any_written_file(wandb_run):
    outcome, _ = wandb_run
    files = [p for p in outcome.run_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    leaked = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert not leaked
