"""`harness prepare` (download + unpack a published benchmark) and `harness verify` (parse its annotations).

Both read the task YAML: `dataset.hub` says where the files live on the Hugging Face hub, `dataset.files`
where the annotation file sits under the data root, `video_path` where each video must be.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.core.config import ConfigError
from harness.data.samples import adapt_rows, ensure_data, load_rows, resolve_root, row_to_sample
from harness.data.tasks import TaskSpec

_OFFLINE_VALUES = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class VerifyReport:
    task: str
    rows: int
    scorable: int  # rows with a gold answer
    videos_present: int  # distinct video files
    videos_missing: int
    missing_examples: tuple[str, ...] = field(default=(), compare=False)
    published_rows: int | None = None

    def as_json(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items()
                if k in ("task", "rows", "scorable", "videos_present", "videos_missing")}


def verify(task: TaskSpec, data_root: str | Path | None = None, annotations: str | Path | None = None) -> VerifyReport:
    """Parse every annotation row into a Sample and count labelled rows and present/missing videos."""
    root = resolve_root(task, data_root)
    if annotations is None:
        ensure_data(task, root)
    files = [Path(annotations).expanduser().resolve()] if annotations else None
    rows = load_rows(task, root, files)
    rows = adapt_rows(task, rows, str(files[0] if files else ", ".join(task.dataset.files)))
    samples = [row_to_sample(task, row, root, f"row {i}") for i, row in enumerate(rows)]
    videos = sorted({s.video for s in samples})
    missing = [v for v in videos if not os.path.exists(v)]
    return VerifyReport(
        task=task.task, rows=len(samples), scorable=sum(s.answer is not None for s in samples),
        videos_present=len(videos) - len(missing), videos_missing=len(missing),
        missing_examples=tuple(missing[:3]), published_rows=task.dataset.published_rows,
    )


def prepare(task: TaskSpec, data_root: str | Path | None = None, repo: str | None = None) -> Path:
    """Download the task's hub files into the data root and unpack its archives; returns the root."""
    root = resolve_root(task, data_root)
    hub = task.dataset.hub
    if hub is None:
        if task.dataset.generator is None:
            raise ConfigError(f"task {task.task}: no `dataset.hub` source in {task.source}; put the files under {root}")
        ensure_data(task, root)  # generated benchmark (needle): build it locally
        return root
    repos = hub.repos
    if repo is not None:
        if repo not in hub.repos:
            raise ConfigError(f"task {task.task}: repo {repo!r} is not one of {list(hub.repos)}")
        repos = (repo,)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFFLINE_VALUES:
        raise ConfigError(f"task {task.task}: HF_HUB_OFFLINE is set, so nothing can be downloaded; on a machine "
                          f"with network run `HF_HUB_OFFLINE=0 python -m harness prepare --task {task.task} "
                          f"--data-root {root}`, or copy the files of {repos[0]} there")
    download(task, root, repos)
    unpack(root, hub.unpack)
    return root


def download(task: TaskSpec, root: Path, repos: tuple[str, ...]) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    hub = task.dataset.hub
    assert hub is not None
    root.mkdir(parents=True, exist_ok=True)
    for name in repos:
        try:
            snapshot_download(repo_id=name, repo_type="dataset", local_dir=str(root),
                              allow_patterns=list(hub.allow_patterns) or None)
            return
        except GatedRepoError as exc:
            raise ConfigError(f"task {task.task}: {name} is gated; accept its terms at "
                              f"https://huggingface.co/datasets/{name} and log in (`hf auth login`)") from exc
        except RepositoryNotFoundError:
            continue  # renamed organisation: try the next accepted name
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"task {task.task}: cannot download {name} from the Hugging Face hub ({first}); "
                              f"check network and credentials") from exc
    raise ConfigError(f"task {task.task}: none of {list(repos)} exists on the hub (or it needs a token)")


def unpack(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Extract every archive matching `patterns` into `root`, each once.

    A marker file is written only after an archive extracted completely, so an interrupted run is
    repaired by running prepare again (lmms-eval skips any existing folder, #124). Split tars
    (`videos.tar.part.aa`, …) are read as one stream in name order.
    """
    done = []
    for pattern in patterns:
        matches = sorted(root.glob(pattern))
        if ".tar.part." in pattern:
            groups: dict[str, list[Path]] = {}
            for part in matches:
                groups.setdefault(part.name.split(".part.")[0], []).append(part)
            archives = [(root / stem, parts) for stem, parts in groups.items()]
        else:
            archives = [(path, [path]) for path in matches]
        for archive, parts in archives:
            marker = root / f".{archive.name}.unpacked"
            if marker.exists():
                continue
            if archive.suffix == ".zip":
                _unzip(archive, root)
            else:
                _untar(parts, root)
            marker.write_text("ok\n")
            done.append(archive)
    return done


def _unzip(path: Path, root: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not (root / member).resolve().is_relative_to(root.resolve()):
                raise ConfigError(f"{path}: member {member!r} would extract outside {root}")
        archive.extractall(root)


class _Concatenated:
    """A read-only file object over several files in order (split tar parts)."""

    def __init__(self, parts: list[Path]) -> None:
        self._files: Iterator[Path] = iter(parts)
        self._current = None
        self._next()

    def _next(self) -> None:
        if self._current:
            self._current.close()
        path = next(self._files, None)
        self._current = path.open("rb") if path else None

    def read(self, size: int = -1) -> bytes:
        chunks = []
        while self._current is not None and (size < 0 or size > 0):
            chunk = self._current.read(size)
            if not chunk:
                self._next()
                continue
            chunks.append(chunk)
            if size > 0:
                size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if self._current:
            self._current.close()


def _untar(parts: list[Path], root: Path) -> None:
    stream = _Concatenated(parts)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:  # type: ignore[call-overload]
            archive.extractall(root, filter="data")  # "data" refuses members escaping root
    except tarfile.TarError as exc:
        raise ConfigError(f"{parts[0]}: cannot extract ({exc}); delete it and run prepare again") from exc
    finally:
        stream.close()
