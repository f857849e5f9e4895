from __future__ import annotations

import os
from pathlib import Path

import harness.data.tasks as tasks
from harness.data.tasks import discover, get_task

TASK = """
task: {name}
default_prompt: p
prompts: {{p: {{user: "{{question}}"}}}}
dataset: {{files: [a.parquet]}}
fields: {{id: i, video: v, question: q, options: o, answer: a}}
"""


def write_task(path: Path, name: str) -> None:
    path.write_text(TASK.format(name=name))


def count_parses(monkeypatch) -> list[Path]:
    parsed: list[Path] = []
    load_yaml = tasks.load_yaml

    def counting(path: Path, *args):
        parsed.append(path)
        return load_yaml(path, *args)

    monkeypatch.setattr(tasks, "load_yaml", counting)
    return parsed


def test_discovery_is_reused_until_a_yaml_changes(tmp_path, monkeypatch):
    write_task(tmp_path / "a.yaml", "alpha")
    parsed = count_parses(monkeypatch)
    first = discover(tmp_path)
    assert discover(tmp_path) is first and len(parsed) == 1, "unchanged directory re-scanned"
    get_task("alpha", tmp_path)
    assert parsed.count(tmp_path / "a.yaml") == 2, "get_task re-parsed every YAML, not only its own"

    write_task(tmp_path / "b.yaml", "beta")  # added
    assert discover(tmp_path).names() == ["alpha", "beta"]
    write_task(tmp_path / "a.yaml", "alpha2")  # edited (another size, so even a coarse mtime sees it)
    assert discover(tmp_path).names() == ["alpha2", "beta"]
    (tmp_path / "b.yaml").unlink()  # removed
    assert discover(tmp_path).names() == ["alpha2"]


def test_discovery_does_not_leak_between_directories(tmp_path, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    for directory, name in ((one, "alpha"), (two, "gamma")):
        directory.mkdir()
        write_task(directory / "t.yaml", name)
    stat = (one / "t.yaml").stat()
    os.utime(two / "t.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same name, size and mtime: only the dir differs
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(one))
    assert discover().names() == ["alpha"]
    monkeypatch.setenv("HARNESS_TASKS_DIR", str(two))
    assert discover().names() == ["gamma"] and get_task("gamma").source == str(two / "t.yaml")
