"""Building a needle dataset once per config: generated into a staging directory, renamed into place, reused
while its manifest matches."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from harness.data.needle.config import NeedleConfig
from harness.data.needle.questions import SCHEMA, plan, question
from harness.data.needle.render import write_video

ANNOTATIONS = "annotations.parquet"
MANIFEST = "manifest.json"
GENERATOR_VERSION = 2  # bump whenever the output for a given config changes, so cached datasets rebuild


def ensure_needle_dataset(root: Path, config: NeedleConfig = NeedleConfig()) -> Path:
    """Generate the dataset into `root` unless a complete one with the same config is there; return its annotations.

    Generation happens in a temporary sibling directory renamed into place at the end, so an interrupted
    run never leaves a directory that looks complete.
    """
    root = Path(root)
    if _is_complete(root, config):
        return root / ANNOTATIONS
    if root.exists() and any(root.iterdir()) and not (root / MANIFEST).exists():
        raise FileExistsError(f"{root} exists and is not a needle dataset; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; the dataset is meant to be shared
    try:
        _generate(staging, config)
        _write_manifest(staging, config)
        if root.exists():  # stale: move aside first so `root` is only ever absent or complete
            stale = root.with_name(f"{staging.name}.old")
            root.rename(stale)
            shutil.rmtree(stale)
        staging.rename(root)
    except OSError:
        if not _is_complete(root, config):  # lost a race with another process generating the same config
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / ANNOTATIONS


def _config_json(config: NeedleConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))  # tuples become lists, as they come back from the manifest


def _is_complete(root: Path, config: NeedleConfig) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (
        manifest.get("complete") is True
        and manifest.get("generator_version") == GENERATOR_VERSION
        and manifest.get("config") == _config_json(config)
        and (root / ANNOTATIONS).is_file()
    )


def _write_manifest(root: Path, config: NeedleConfig) -> None:
    manifest = {"generator_version": GENERATOR_VERSION, "config": _config_json(config), "complete": True}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _generate(out: Path, config: NeedleConfig) -> None:
    (out / "videos").mkdir()
    specs = plan(config)
    rows = []
    with tqdm(total=sum(s.length for s in specs), unit="frame", desc="needle dataset", file=sys.stderr) as progress:
        for spec in specs:
            rng = np.random.default_rng([config.seed, spec.index])  # the question draws first, then its video
            row, events = question(spec, config, rng)
            write_video(out / row["video"], spec.length, events, config, rng, progress)
            rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out / ANNOTATIONS)


def prepare(root: Path, **overrides: object) -> Path:
    """The task YAML's generator hook: `dataset.generator_args` override NeedleConfig fields."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return ensure_needle_dataset(root, NeedleConfig(**fields))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.data.needle", description="Generate the needle benchmark into a directory."
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset directory")
    parser.add_argument("--lengths", help="comma-separated video lengths in frames, e.g. 32,128")
    parser.add_argument("--seed", type=int, default=NeedleConfig.seed)
    parser.add_argument("--per-cell", type=int, default=NeedleConfig.per_cell, help="questions per (kind, length)")
    args = parser.parse_args(argv)
    config = NeedleConfig(seed=args.seed, per_cell=args.per_cell)
    if args.lengths:
        config = replace(config, lengths=tuple(int(x) for x in args.lengths.split(",")))
    print(ensure_needle_dataset(args.out, config))
