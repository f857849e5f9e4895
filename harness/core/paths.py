"""Where the harness keeps generated data, built models, task files and model spec files."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Generated datasets and tiny checkpoints (`HARNESS_CACHE`, default ~/.cache/vilamp-harness)."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "vilamp-harness"))


def tasks_dir() -> Path:
    """Task YAML files (`HARNESS_TASKS_DIR`, default the repository's tasks/)."""
    return Path(os.environ.get("HARNESS_TASKS_DIR", REPO_ROOT / "tasks"))


def specs_dir() -> Path:
    """Model spec YAML files (`HARNESS_SPECS_DIR`, default the repository's specs/)."""
    return Path(os.environ.get("HARNESS_SPECS_DIR", REPO_ROOT / "specs"))


def results_dir() -> Path:
    return Path(os.environ.get("HARNESS_RESULTS", REPO_ROOT / "results"))


def canary_weights(name: str) -> Path:
    """A trained canary checkpoint shipped inside the package (harness/canary/weights/NAME, `make canary`)."""
    return Path(__file__).resolve().parents[1] / "canary" / "weights" / name
