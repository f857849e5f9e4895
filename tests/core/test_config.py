from pathlib import Path

import pytest

from harness.core.config import ConfigError, load_yaml
from harness.core.registry import Registry, UnknownNameError
from harness.data.tasks import discover, get_task, load_task_file


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_include_merges_nested_keys_and_child_wins(tmp_path):
    write(tmp_path / "_base.yaml", "a: 1\nnested: {x: 1, y: 2}\n")
    child = write(tmp_path / "child.yaml", "include: _base.yaml\nnested: {y: 3}\nb: 2\n")
    assert load_yaml(child) == {"a": 1, "b": 2, "nested": {"x": 1, "y": 3}}


def test_include_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "include: b.yaml\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_yaml(tmp_path / "a.yaml")


MINIMAL = """
task: t1
default_prompt: p
prompts: {p: {user: "{question}"}}
dataset: {files: [a.parquet]}
fields: {id: i, video: v, question: q, options: o, answer: a}
"""


def test_unknown_key_names_file_and_path(tmp_path):
    path = write(tmp_path / "t.yaml", MINIMAL + "fields_typo: 1\n")
    with pytest.raises(ConfigError, match=r"t\.yaml.*unknown key\(s\) \['fields_typo'\]"):
        load_task_file(path)
    path = write(tmp_path / "t.yaml", MINIMAL.replace("answer: a}", "answr: a}"))
    with pytest.raises(ConfigError, match=r"\.fields: unknown key\(s\) \['answr'\]"):
        load_task_file(path)


def test_wrong_type_is_reported(tmp_path):
    path = write(tmp_path / "t.yaml", MINIMAL + "generation: {max_new_tokens: lots}\n")
    with pytest.raises(ConfigError, match="max_new_tokens: expected int"):
        load_task_file(path)


def test_default_prompt_must_exist(tmp_path):
    path = write(tmp_path / "t.yaml", MINIMAL.replace("default_prompt: p", "default_prompt: q"))
    with pytest.raises(ConfigError, match="default_prompt 'q'"):
        load_task_file(path)


def test_discover_skips_templates_and_finds_tasks(tmp_path):
    write(tmp_path / "_base.yaml", "version: 3\n")
    write(tmp_path / "t1.yaml", "include: _base.yaml\n" + MINIMAL)
    registry = discover(tmp_path)
    assert registry.names() == ["t1"]
    assert get_task("t1", tmp_path).version == 3


def test_repository_tasks_all_parse():
    registry = discover()
    assert "needle" in registry
    for name in registry:
        assert load_task_file(registry.get(name)).task == name


def test_registry_did_you_mean_and_lazy_entries():
    registry: Registry = Registry("thing")
    registry.register("alpha", "harness.scoring.metrics:accuracy")
    registry.register("beta", 2)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'alpah' \(did you mean 'alpha'\?\); valid things: alpha, beta"):
        registry.get("alpah")
    from harness.scoring.metrics import accuracy

    assert registry.get("alpha") is accuracy
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("beta", 3)
