"""Peak memory against frames for the 7B specs (harness.cost.estimate), with the card's capacity as a line:
results/cost/memory_vs_frames.png, the same numbers as cost.md (a table) and cost.json (every row).

    python -m harness.results.cost_plot [--out results/cost] [--gpu a100-80gb]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

from harness.core.paths import results_dir
from harness.cost.estimate import Cost, estimate
from harness.cost.gpus import gpu
from harness.model.specs import MODELS
from harness.results.plots import MARKERS, save
from harness.results.summary import markdown_table

FRAMES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 10_000)
PANELS = {"LLaVA-OneVision-7B": "llava-ov-7b", "LLaVA-Video-7B": "llava-video-7b", "Qwen2.5-VL-7B": "qwen25vl-7b",
          "ViLAMP-7B": ""}
METHODS = ("uniform", "vilamp-tf", "fastv", "visionzip", "topk", "aks", "bolt", "adardkey", "keyclips")


def panel_specs(base: str) -> list[str]:
    """The specs one panel shows: ViLAMP's own model, or the methods a backbone has specs for."""
    if not base:
        return ["vilamp"]
    return [f"{base}-{m}" for m in METHODS if f"{base}-{m}" in MODELS]


def costs(card: str, frames: tuple[int, ...] = FRAMES) -> dict[str, list[Cost]]:
    return {name: [estimate(MODELS.get(name), n, card) for n in frames]
            for base in PANELS.values() for name in panel_specs(base)}


def figure(by_spec: dict[str, list[Cost]], card: str):
    capacity = gpu(card).memory_gb
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 4.4), sharey=True, layout="constrained")
    for ax, (title, base) in zip(axes, PANELS.items(), strict=True):
        for i, name in enumerate(panel_specs(base)):
            rows = by_spec[name]
            label = name.removeprefix(f"{base}-") if base else name
            ax.plot([c.frames for c in rows], [c.peak_gb for c in rows], marker=MARKERS[i % len(MARKERS)],
                    markersize=4, color=f"C{i % 10}", label=label)
            over = [c for c in rows if c.exceeds_context]
            ax.scatter([c.frames for c in over], [c.peak_gb for c in over], s=46, facecolors="none",
                       edgecolors=f"C{i % 10}")
        ax.axhline(capacity, color="black", linestyle="--", linewidth=1)
        ax.text(FRAMES[0], capacity * 1.12, f"{card} ({capacity:g} GB)", fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("frames N")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("predicted peak GPU memory (GB)")
    fig.suptitle("peak memory vs frames (harness cost; circled: the sequence exceeds the LLM context window)",
                 fontsize=10)
    return fig


def table(by_spec: dict[str, list[Cost]]) -> str:
    """Peak GB per spec × N; ✗ where it does not fit the card, * where the sequence exceeds the context window."""
    rows = []
    for name, spec_costs in by_spec.items():
        row = {"model": name}
        for c in spec_costs:
            row[f"{c.frames:,}"] = f"{c.peak_gb:,.1f}{'' if c.fits else ' ✗'}{' *' if c.exceeds_context else ''}"
        rows.append(row)
    return markdown_table(rows)


def write(out: Path, card: str) -> dict[str, Path]:
    by_spec = costs(card)
    out.mkdir(parents=True, exist_ok=True)
    info = save(figure(by_spec, card), out / "memory_vs_frames.png")
    (out / "plots.json").write_text(json.dumps([info], indent=2))
    rows = [json.dumps(c.row()) for spec_costs in by_spec.values() for c in spec_costs]
    (out / "cost.json").write_text("[\n" + ",\n".join(rows) + "\n]\n")  # one row a line
    (out / "cost.md").write_text(f"# Predicted peak GPU memory (GB) on {card}\n\n"
                                 "`python -m harness.results.cost_plot`; ✗: does not fit, *: sequence beyond the "
                                 "LLM's context window.\n\n" + table(by_spec) + "\n")
    return {"plot": out / "memory_vs_frames.png", "table": out / "cost.md", "rows": out / "cost.json"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=results_dir() / "cost")
    parser.add_argument("--gpu", default="a100-80gb")
    args = parser.parse_args(argv)
    for kind, path in write(args.out, args.gpu).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
