"""`harness compare` on two real runs (two specs of the needle task) and the plot helpers on known data."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.core.records import SampleResult
from harness.evaluate import EvalRequest, evaluate
from harness.results.compare import CompareError, figures, labelled, load_run
from harness.results.plots import frame_strip, grid
from harness.run.config import RunnerConfig

SPECS = ("tiny-uniform", "tiny-uniform-1fps")


@pytest.fixture(scope="module")
def two_runs(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare-runs")
    return [evaluate(EvalRequest(task="needle", model=spec, limit=4, out=str(out), wandb=False,
                                 runner=RunnerConfig(workers=2))).run_dir for spec in SPECS]


def test_compare_writes_table_report_and_plots(two_runs, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["model"] for r in rows] == list(SPECS) and all(r["task"] == "needle" and r["n"] == "4" for r in rows)
    assert float(rows[0]["frames_used"]) == 16 and float(rows[1]["frames_used"]) > 16  # 1 fps, up to 64 frames
    assert float(rows[1]["visual_tokens"]) > float(rows[0]["visual_tokens"])
    report = (out / "compare.md").read_text()
    assert "| tiny-uniform |" in report and "| tiny-uniform-1fps |" in report and "## accuracy by depth_bucket" in report
    plots = json.loads((out / "plots.json").read_text())
    expected = {
        "accuracy_vs_visual_tokens": ("visual tokens per sample (mean)", "accuracy (%)"),
        "accuracy_vs_visual_tokens_curves": ("visual tokens per sample (mean)", "accuracy (%)"),
        "accuracy_vs_frames_curves": ("frames reaching the model per sample (mean)", "accuracy (%)"),
        "peak_memory_vs_frames": ("frames reaching the model per sample (mean)",
                                  "peak memory per sample (MB, max over run)"),
        "latency_by_stage": ("mean seconds per sample", "run"),
        "needle_accuracy": ("needle depth (fraction of video)", "video length (frames)"),
        "needle_retention": ("needle depth (fraction of video)", "video length (frames)"),
    }
    assert set(plots) == set(expected)
    for name, (xlabel, ylabel) in expected.items():
        assert (plots[name]["xlabel"], plots[name]["ylabel"]) == (xlabel, ylabel), name
        png = out / plots[name]["file"]
        assert png.stat().st_size > 5000 and f"]({png.name})" in report
        assert min(Image.open(png).size) > 200
    assert plots["needle_retention"]["panels"] == list(SPECS)  # one heat-map per run, side by side


def test_compare_splits_accuracy_by_needle_retention(two_runs, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    for row, run_dir in zip(rows, two_runs, strict=True):
        results = load_run(run_dir).results
        assert int(row["n_needle_retained"]) + int(row["n_needle_lost"]) == int(row["n"])  # every needle sample knows
        for side, retained in (("retained", True), ("lost", False)):
            group = [r for r in results if r.needle_retained is retained]
            expected = str(round(100 * sum(r.correct for r in group) / len(group), 2)) if group else ""
            assert (row[f"n_needle_{side}"], row[f"acc_needle_{side}"]) == (str(len(group)), expected), side
    assert "| acc_needle_retained | stderr_needle_retained | n_needle_retained |" in (out / "compare.md").read_text()


def test_figures_carry_axis_labels(two_runs):
    figs = figures(labelled([load_run(d) for d in two_runs]))
    ax = figs["accuracy_vs_visual_tokens"].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("visual tokens per sample (mean)", "accuracy (%)")
    assert len(ax.containers) == len(SPECS)  # one error-bar marker per run
    heat = [a for a in figs["needle_retention"].axes if a.get_label() != "<colorbar>"]
    assert [a.get_title() for a in heat] == list(SPECS)


def test_bad_run_dir_is_one_clear_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "summary.json") in err
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(CompareError, match="not a harness summary"):
        load_run(tmp_path)


def _result(i: int, length: str, depth: str, correct: bool, kept: bool | None) -> SampleResult:
    return SampleResult(id=f"s{i}", task="needle", model="m", status="ok", gold=0, pred=0 if correct else 1,
                        correct=correct, needle_retained=kept, breakdown={"length_bucket": length, "depth_bucket": depth})


def test_grid_means_per_cell_in_numeric_order():
    results = [_result(0, "128", "0.5", True, True), _result(1, "128", "0.5", False, True),
               _result(2, "32", "spread", True, False), _result(3, "32", "0.1", False, None)]
    g = grid(results, "length_bucket", "depth_bucket", lambda r: 100.0 * r.correct)
    assert (g.rows, g.cols) == (("32", "128"), ("0.1", "0.5", "spread"))
    np.testing.assert_array_equal(g.counts, [[1, 0, 1], [0, 2, 0]])
    np.testing.assert_array_equal(g.values, [[0, np.nan, 100], [np.nan, 50, np.nan]])
    kept = grid(results, "length_bucket", "depth_bucket",
                lambda r: None if r.needle_retained is None else 100.0 * r.needle_retained)
    assert kept.cols == ("0.5", "spread")  # samples without a value are left out


def test_frame_strip_thins_and_frames_keyframes():
    pixels = np.zeros((40, 30, 40, 3), np.uint8)
    strip = frame_strip(pixels, [i == 0 for i in range(40)], height=24, max_frames=8)
    assert strip.shape == (24, 8 * 32 + 7 * 2, 3)
    assert tuple(strip[0, 0]) == (255, 0, 0) and tuple(strip[12, 40]) == (0, 0, 0)  # first framed red, next not
