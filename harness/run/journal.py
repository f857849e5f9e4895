"""Append-only JSONL journal: one line per finished sample, flushed as soon as it is known."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.records import SampleResult

_FIELDS = tuple(f.name for f in dataclasses.fields(SampleResult))


def to_json(result: SampleResult) -> dict[str, Any]:
    """The record's fields as they are: json writes tuples as lists. (dataclasses.asdict deep-copies every frame
    index, a millisecond per line on a long video: most of the driver's time per sample.)"""
    return {name: getattr(result, name) for name in _FIELDS}


def from_json(data: dict[str, Any]) -> SampleResult:
    tuples = {"frame_indices", "keyframes"}
    return SampleResult(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


class Journal:
    """Each line is flushed to the OS as it is appended, so it survives any crash of this process. A thread of its
    own fsyncs (~2 ms a call here, off the driver's loop) at most every `sync_every_s` while lines arrive, and on
    close: a crash of the whole machine can lose only the last interval's lines, which `--resume` then runs again."""

    def __init__(self, path: Path, sync_every_s: float = 1.0) -> None:
        self.path = path
        self.sync_every_s = sync_every_s
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        self._file = path.open("a", encoding="utf-8")
        self._written = threading.Event()  # lines appended since the last fsync
        self._closing = threading.Event()
        self._sync_error: OSError | None = None
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    def append(self, result: SampleResult) -> None:
        self._raise_sync_error()
        self._file.write(json.dumps(to_json(result), ensure_ascii=False) + "\n")
        self._file.flush()
        self._written.set()

    def _sync_loop(self) -> None:
        try:
            while not self._closing.wait(self.sync_every_s):
                if self._written.is_set():
                    self._written.clear()
                    os.fsync(self._file.fileno())  # of what was flushed: the driver's writes need no lock
        except OSError as exc:  # a full or failing disk: the driver hears of it at its next line
            self._sync_error = exc

    def _raise_sync_error(self) -> None:
        if self._sync_error is not None:
            raise OSError(f"{self.path}: fsync failed: {self._sync_error}") from self._sync_error

    def close(self) -> None:
        self._closing.set()
        self._syncer.join()
        try:
            self._raise_sync_error()
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()


def read_journal(path: Path) -> Iterator[SampleResult]:
    """Every complete line; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                yield from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue


def finished(path: Path) -> dict[str, SampleResult]:
    """The samples a journal holds, by id (the first line wins should an id ever appear twice)."""
    done: dict[str, SampleResult] = {}
    for result in read_journal(path):
        done.setdefault(result.id, result)
    return done


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a crash mid-write) so the next append starts on a line of its own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":  # only then read the file for its last complete line
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
