"""Dataset rows → canonical `Sample`s, through Hugging Face `datasets` as for a published benchmark."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.config import ConfigError
from harness.core.paths import cache_dir
from harness.core.records import LETTERS, Sample
from harness.data.tasks import FieldMap, TaskSpec

_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Z])[\.\):]\s*")
_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json"}


def resolve_root(task: TaskSpec, data_root: str | Path | None = None) -> Path:
    root = Path(data_root) if data_root else Path(task.dataset.root.format(cache=cache_dir()))
    if not str(root):
        raise ConfigError(f"task {task.task}: no data root; pass --data-root DIR")
    return root.expanduser().resolve()


def ensure_data(task: TaskSpec, root: Path) -> None:
    """Run the task's generator when its annotation files are absent (generated tasks only)."""
    if all((root / f).exists() for f in task.dataset.files):
        return
    if task.dataset.generator is None:
        missing = [str(root / f) for f in task.dataset.files if not (root / f).exists()]
        how = (f"download it with `python -m harness prepare --task {task.task} --data-root {root}`, or "
               if task.dataset.hub else "")
        raise ConfigError(f"task {task.task}: annotation file(s) not found: {', '.join(missing)}; "
                          f"{how}pass --data-root DIR pointing at the downloaded benchmark")
    module, _, attr = task.dataset.generator.partition(":")
    getattr(importlib.import_module(module), attr)(root, **task.dataset.generator_args)


def load_rows(task: TaskSpec, root: Path, files: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """The annotation rows, through `datasets`; `files` overrides the task's (absolute or under `root`)."""
    import datasets

    paths = [str(root / f) for f in (files or task.dataset.files)]
    kinds = {_FORMATS.get(Path(f).suffix.lower()) for f in paths}
    if None in kinds or len(kinds) != 1:
        raise ConfigError(f"task {task.task}: annotation files must all be parquet, json or jsonl: {paths}")
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"task {task.task}: annotation file not found: {path}")
    datasets.disable_progress_bars()
    # Local files need no hub, but load_dataset would still send a download-count request to S3 for its packaged
    # builder (datasets.load.increase_load_count) unless HF_HUB_OFFLINE is set: nothing may leave this machine.
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    try:
        dataset = datasets.load_dataset(
            kinds.pop(), data_files={task.dataset.split: paths}, split=task.dataset.split,
            cache_dir=str(cache_dir() / "hf-datasets"),
        )
    except Exception as exc:  # arrow/json errors have many types; all mean the same thing to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"task {task.task}: cannot read {', '.join(paths)}: {first}") from exc
    return list(dataset)


def adapt_rows(task: TaskSpec, rows: Sequence[Mapping[str, Any]], where: str) -> list[dict[str, Any]]:
    """Apply the task's row adapter (harness/data/adapters.py), naming the row that fails."""
    if task.dataset.adapter is None:
        return [dict(row) for row in rows]
    from harness.data.adapters import ADAPTERS

    adapter = ADAPTERS.get(task.dataset.adapter)
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(adapter(row))
        except ConfigError as exc:
            raise ConfigError(f"{where}: row {i}: {exc}") from exc
    return out


def load_samples(task: TaskSpec, data_root: str | Path | None = None, limit: int | None = None,
                 annotations: str | Path | None = None) -> list[Sample]:
    """The task's samples; `annotations`: read this file as published instead of the task's own files."""
    root = resolve_root(task, data_root)
    files = [Path(annotations).expanduser().resolve()] if annotations else None
    if files is None:
        ensure_data(task, root)
    rows = load_rows(task, root, files)
    if limit is not None:
        rows = rows[:limit]
    rows = adapt_rows(task, rows, str(files[0]) if files else ", ".join(task.dataset.files))
    where = str(files[0]) if files else task.source  # rows are numbered in the file they came from
    return [row_to_sample(task, row, root, f"{where}: row {i}") for i, row in enumerate(rows)]


def row_to_sample(task: TaskSpec, row: Mapping[str, Any], root: Path, where: str) -> Sample:
    fm = task.fields

    def column(name: str) -> Any:
        if name not in row:
            raise ConfigError(f"{where}: column {name!r} not found; columns: {sorted(row)}")
        return row[name]

    options = _as_list(column(fm.options), f"{where}: {fm.options}")
    if fm.strip_option_prefix:
        options = [_OPTION_PREFIX.sub("", o, count=1) for o in options]
    video_rel = str(column(fm.video))
    return Sample(
        id=str(column(fm.id)),
        task=task.task,
        video=str(video_path(task, row, root, where)),
        question=str(column(fm.question)),
        options=tuple(str(o) for o in options),
        answer=None if fm.answer is None else parse_gold(column(fm.answer), fm, options, where),
        video_id=str(column(fm.video_id)) if fm.video_id else video_rel,
        duration_s=float(column(fm.duration)) if fm.duration else None,
        breakdown={key: str(column(key)) for key in task.metric.breakdown},
        evidence_spans_s=_spans(column(fm.evidence_spans)) if fm.evidence_spans else (),
        meta={key: _plain(column(key)) for key in fm.keep} | subtitle_meta(task, row, root, where),
    )


def subtitle_meta(task: TaskSpec, row: Mapping[str, Any], root: Path, where: str) -> dict[str, Any]:
    """Where the sample's subtitle file is and the offset of its times; read later, per sampled frames."""
    spec = task.subtitles
    if spec is None:
        return {}
    offset = row.get(spec.offset) if spec.offset else None
    return {"subtitle_file": str(_inside_root(spec.path, row, root, where)),
            "subtitle_offset_s": float(offset) if offset is not None else 0.0}


def video_path(task: TaskSpec, row: Mapping[str, Any], root: Path, where: str) -> Path:
    """The first of video_path and its fallbacks (e.g. VideoMME's .MP4/.mkv files) that exists, else the first."""
    paths = [_inside_root(template, row, root, where) for template in (task.video_path, *task.video_path_fallbacks)]
    return next((p for p in paths if p.exists()), paths[0])


def _inside_root(template: str, row: Mapping[str, Any], root: Path, where: str) -> Path:
    try:
        path = Path(template.format(root=root, **row)).resolve()
    except KeyError as exc:
        raise ConfigError(f"{where}: path template {template!r} names unknown column {exc}") from exc
    if not path.is_relative_to(root):
        raise ConfigError(f"{where}: path {path} escapes the data root {root}")
    return path


def parse_gold(value: Any, fm: FieldMap, options: Sequence[str], where: str) -> int | None:
    if value is None:
        return None
    if fm.answer_format == "letter":
        letter = str(value).strip().strip("()").upper()[:1]
        index = LETTERS.find(letter) if letter else -1
    elif fm.answer_format == "index":
        index = int(value)
    else:
        index = list(options).index(value) if value in options else -1
    if not 0 <= index < len(options):
        raise ConfigError(f"{where}: answer {value!r} ({fm.answer_format}) does not name one of {len(options)} options")
    return index


def _as_list(value: Any, where: str) -> list[Any]:
    if hasattr(value, "tolist"):  # numpy arrays from parquet list columns
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: expected a list of options, got {type(value).__name__}")
    return list(value)


def _spans(value: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(start), float(end)) for start, end in _plain(value))


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value
