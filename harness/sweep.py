"""Sweeps: a matrix of specs × tasks × overrides, each cell a normal resumable run in one sweep directory, then the
comparison a paper needs (`harness compare` with a reference: the specs × tasks table, accuracy-vs-cost curves
with the Pareto frontier, paired tests).

    python -m harness sweep FILE.yaml [--out DIR] [--workers N]
    python -m harness sweep --task T[,T…] --model M[,M…] --grid selector.n=8,16,32,64 [--limit N] [--reference M]

A sweep file (sweeps/*.yaml):

    sweep: needle-frames                  # the sweep directory's name, and the W&B group
    tasks: [needle]                       # tasks or suites
    limit: 24
    cells:
      - {model: tiny-uniform, grid: {selector.n: [4, 8, 16, 32]}}    # one cell per grid point
      - {model: vilamp-tiny}
      - {model: tiny-uniform, budget_of: vilamp-tiny}               # at the visual tokens vilamp-tiny used
    reference: tiny-uniform@selector.n=16                            # paired tests against it

Re-running a sweep skips its finished cells and resumes interrupted ones: a cell's run directory is named by its
task, spec and config hash. `budget_of: X` runs after X and sets `selector.budget` to the mean visual tokens X fed
the LLM on the same task (a selector with a `budget` argument: uniform), so methods meet at X's cost; every
cell's summary records the tokens it actually used.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.core.config import ConfigError, build, load_yaml
from harness.core.paths import results_dir
from harness.data.tasks import task_names
from harness.evaluate import EvalRequest, ResolvedRun, config_hash, evaluate, resolve
from harness.results.compare import compare
from harness.run.config import RunnerConfig

SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class CellSpec:
    model: str
    grid: dict[str, list[Any]] = field(default_factory=dict)  # override key → values: one cell per combination
    set: tuple[str, ...] = ()  # overrides every cell of this entry takes
    budget_of: str | None = None  # a cell label (spec name with its overrides) whose visual tokens to match


@dataclass(frozen=True)
class SweepSpec:
    sweep: str
    tasks: tuple[str, ...]
    cells: tuple[CellSpec, ...]
    limit: int | None = None
    reference: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Cell:
    model: str
    overrides: tuple[str, ...]
    task: str
    budget_of: str | None = None


def load_sweep(path: Path) -> SweepSpec:
    return build(SweepSpec, load_yaml(Path(path)), where=str(path))


def inline_sweep(tasks: str, models: str, grid: list[str], limit: int | None, reference: str | None) -> SweepSpec:
    """`--task a,b --model m1,m2 --grid selector.n=8,16`: every model over the grid's product."""
    axes: dict[str, list[Any]] = {}
    for text in grid:
        key, sep, values = text.partition("=")
        if not sep or not values:
            raise ConfigError(f"--grid {text!r}: expected key=v1,v2,…, e.g. selector.n=8,16,32")
        axes[key] = [v.strip() for v in values.split(",")]  # parsed as YAML by the overrides, like --set
    names = [m.strip() for m in models.split(",")]
    name = f"{tasks.replace(',', '+')}__{'+'.join(names)}" + (f"__{'+'.join(axes)}" if axes else "")
    return SweepSpec(name, tuple(t.strip() for t in tasks.split(",")), tuple(CellSpec(m, axes) for m in names),
                     limit, reference)


def expand(spec: SweepSpec) -> list[Cell]:
    """Every (spec variant, task) cell, the budget-matched ones last (they need their source's tokens)."""
    tasks = [t for selection in spec.tasks for t in task_names(selection)]
    cells = []
    for entry in spec.cells:
        keys = list(entry.grid)
        for values in itertools.product(*(entry.grid[k] for k in keys)) if keys else [()]:
            overrides = (*entry.set, *(f"{k}={v}" for k, v in zip(keys, values, strict=True)))
            cells += [Cell(entry.model, overrides, task, entry.budget_of) for task in tasks]
    return sorted(cells, key=lambda c: c.budget_of is not None)


def _label(cell: Cell) -> str:
    return cell.model + (f"@{','.join(o.replace(' ', '') for o in cell.overrides)}" if cell.overrides else "")


def run_sweep(spec: SweepSpec, out: str | None = None, runner: RunnerConfig = RunnerConfig(),
              wandb: bool = True) -> dict[str, Any]:
    """Run every cell not finished yet into `out`/<sweep>/runs, then the comparison into `out`/<sweep>/comparison;
    returns compare's result plus the sweep directory. Every cell is checked before the first one runs."""
    sweep_dir = Path(out or results_dir()) / spec.sweep
    cells = expand(spec)
    labels = {_label(c) for c in cells}
    checked = {}  # preflight: every name and argument, before the first cell runs (kept for the run itself)
    for cell in cells:
        if cell.budget_of is not None and cell.budget_of not in labels:
            raise ConfigError(f"sweep {spec.sweep}: budget_of {cell.budget_of!r} is no cell of this sweep; cells: "
                              f"{', '.join(sorted(labels))}")
        if cell.budget_of is None:
            request = _request(spec, cell, (), sweep_dir, runner, wandb)
            checked[_label(cell), cell.task] = (request, resolve(request))
    (sweep_dir / "runs").mkdir(parents=True, exist_ok=True)
    (sweep_dir / SWEEP_FILE).write_text(json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    runs: dict[tuple[str, str], Path] = {}
    with tqdm(total=len(cells), desc=f"sweep {spec.sweep}", unit="cell", position=0, dynamic_ncols=True) as bar:
        for cell in cells:
            if cell.budget_of is None:
                request, resolved = checked[_label(cell), cell.task]
            else:  # its budget is known only now, from the run it matches
                source = json.loads((runs[cell.budget_of, cell.task] / "summary.json").read_text())
                extra = (f"selector.budget={round(source['cost']['visual_tokens_mean'])}",)
                request = _request(spec, cell, extra, sweep_dir, runner, wandb)
                resolved = resolve(request)
            runs[_label(cell), cell.task] = _run_cell(request, resolved)
            bar.update(1)
    result = compare(list(runs.values()), sweep_dir / "comparison", title=spec.description or f"sweep {spec.sweep}",
                     reference=spec.reference)
    if wandb:
        result["wandb"] = _summary_run(spec, sweep_dir, result)
    return {**result, "sweep_dir": sweep_dir}


def _summary_run(spec: SweepSpec, sweep_dir: Path, result: dict[str, Any]) -> str:
    """The sweep's tables and plots as one W&B run in the sweep's group (the cells' runs are its members), and the
    W&B report when online; returns what was published."""
    import wandb

    from harness.results.compare import publish_wandb_report
    from harness.results.wandb_sink import open_run

    out = sweep_dir / "comparison"
    run = open_run(out, f"{spec.sweep}__summary", spec.sweep, "sweep-summary", dataclasses.asdict(spec))
    tables = {name: rows for name, rows in (("cells", result["rows"]), ("specs_x_tasks", result["table"]),
                                            ("paired", result["paired"])) if rows}
    run.log({**{name: wandb.Table(columns=list(dict.fromkeys(k for r in rows for k in r)),
                                  data=[[str(r.get(k, "")) for k in dict.fromkeys(k for r in rows for k in r)]
                                        for r in rows]) for name, rows in tables.items()},
             **{name: wandb.Image(str(out / info["file"])) for name, info in result["plots"].items()}})
    path = str(Path(run.dir).parent)
    run.finish()
    return f"W&B summary run (group {spec.sweep}): {path}; " + publish_wandb_report(result["runs"], result["title"],
                                                                                    result["report"])


def _request(spec: SweepSpec, cell: Cell, extra: tuple[str, ...], sweep_dir: Path, runner: RunnerConfig,
             wandb: bool) -> EvalRequest:
    return EvalRequest(task=cell.task, model=cell.model, overrides=(*cell.overrides, *extra), limit=spec.limit,
                       out=str(sweep_dir / "runs"), wandb=wandb, group=spec.sweep, runner=runner)


def _run_cell(request: EvalRequest, resolved: ResolvedRun) -> Path:
    """The cell's run directory: reused when finished, resumed when interrupted, else a new run."""
    run_dir = Path(request.out) / f"{resolved.task.task}__{resolved.spec.name}__{config_hash(resolved.config)}"
    if (run_dir / "summary.json").is_file():
        return run_dir
    if (run_dir / "config.json").is_file():
        return evaluate(dataclasses.replace(request, resume=str(run_dir)), resolved).run_dir
    return evaluate(dataclasses.replace(request, run_name=run_dir.name), resolved).run_dir
