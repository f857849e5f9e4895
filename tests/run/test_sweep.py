"""Sweeps: the matrix of cells, budget matching, resumable cells, and the comparison with its paired tests."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.core.config import ConfigError
from harness.run.config import RunnerConfig
from harness.sweep import CellSpec, SweepSpec, expand, inline_sweep, load_sweep, run_sweep

FAST = RunnerConfig(workers=1, decode_in_model=True)
SPEC = SweepSpec("t-sweep", ("needle",), (CellSpec("tiny-uniform", {"selector.n": [4, 8]}), CellSpec("vilamp-tf"),
                                           CellSpec("tiny-uniform", budget_of="vilamp-tf")),
                 limit=6, reference="tiny-uniform@selector.n=8")


def test_expand_is_the_matrix_with_budget_cells_last():
    cells = expand(SPEC)
    assert [(c.model, c.overrides, c.budget_of) for c in cells] == [
        ("tiny-uniform", ("selector.n=4",), None), ("tiny-uniform", ("selector.n=8",), None),
        ("vilamp-tf", (), None), ("tiny-uniform", (), "vilamp-tf")]
    inline = inline_sweep("needle,needle_exam", "tiny-uniform", ["selector.n=4,8"], 3, None)
    assert len(expand(inline)) == 4 and inline.sweep == "needle+needle_exam__tiny-uniform__selector.n"


def test_the_shipped_sweeps_load():
    for name in ("needle-frames", "needle-canary"):
        spec = load_sweep(f"sweeps/{name}.yaml")
        assert spec.sweep == name and spec.reference and len(expand(spec)) == 6


def test_a_bad_cell_fails_before_any_cell_runs(tmp_path):
    bad = SweepSpec("bad", ("needle",), (CellSpec("tiny-uniform", {"selector.nn": [4]}),))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nn'\]"):
        run_sweep(bad, str(tmp_path), FAST, wandb=False)
    orphan = SweepSpec("orphan", ("needle",), (CellSpec("tiny-uniform", budget_of="nope"),))
    with pytest.raises(ConfigError, match="budget_of 'nope' is no cell"):
        run_sweep(orphan, str(tmp_path), FAST, wandb=False)
    assert not any((tmp_path / name / "runs").exists() for name in ("bad", "orphan"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps")
    return out, run_sweep(SPEC, str(out), FAST, wandb=False)


def test_a_sweep_runs_every_cell_and_writes_the_comparison(swept):
    out, done = swept
    runs = sorted(p.name for p in (out / "t-sweep" / "runs").iterdir())
    assert len(runs) == 4 and all(r.startswith("needle__") for r in runs)
    comparison = out / "t-sweep" / "comparison"
    assert {"compare.md", "table.csv", "paired.csv", "accuracy_vs_visual_tokens_curves.png",
            "accuracy_vs_frames_curves.png", "peak_memory_vs_frames.png"} <= {p.name for p in comparison.iterdir()}
    tokens = {r["run"]: r["visual_tokens"] for r in done["rows"]}
    vilamp = tokens["vilamp-tf"]
    (label,) = [k for k in tokens if k.startswith("tiny-uniform@selector.budget=")]
    assert label == f"tiny-uniform@selector.budget={round(vilamp)}"  # the budget is what vilamp-tf used
    # and the cell records what it used: the budget's frames, fewer on videos shorter than that
    assert vilamp - 16 * 3 <= tokens[label] <= vilamp + 16
    assert tokens["tiny-uniform@selector.n=4"] < tokens["tiny-uniform@selector.n=8"]
    paired = {r["run"]: r for r in done["paired"]}
    assert set(paired) == set(tokens) - {"tiny-uniform@selector.n=8"} and all(r["n"] == 6 for r in paired.values())
    report = done["report"].read_text()
    assert "## specs × tasks" in report and "## paired against tiny-uniform@selector.n=8" in report


def test_re_running_a_sweep_skips_its_finished_cells(swept, capsys):
    out, _ = swept
    before = {p.name: (p / "summary.json").stat().st_mtime_ns for p in (out / "t-sweep" / "runs").iterdir()}
    run_sweep(SPEC, str(out), FAST, wandb=False)
    after = {p.name: (p / "summary.json").stat().st_mtime_ns for p in (out / "t-sweep" / "runs").iterdir()}
    assert after == before  # nothing re-ran
    assert json.loads((out / "t-sweep" / "sweep.json").read_text())["sweep"] == "t-sweep"


def test_the_inline_command_line_with_its_w_and_b_group(tmp_path, capsys):
    code = main(["sweep", "--task", "needle", "--model", "tiny-uniform", "--grid", "selector.n=4,8", "--limit", "2",
                 "--workers", "1", "--out", str(tmp_path), "--reference", "tiny-uniform@selector.n=4"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "## paired against tiny-uniform@selector.n=4" in printed and "sweep: " in printed
    (sweep_dir,) = tmp_path.iterdir()
    assert "W&B summary run (group needle__tiny-uniform__selector.n)" in printed
    assert len(list((sweep_dir / "comparison" / "wandb").glob("offline-run-*"))) == 1  # the summary run
    assert len(list(sweep_dir.glob("runs/*/wandb/offline-run-*"))) == 2  # one per cell, in the same group
    assert main(["sweep", "--task", "needle"]) == 2  # neither a file nor a full inline sweep
