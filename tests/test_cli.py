"""The command line fails fast: a bad prompt profile, spec argument or method/backbone pairing is one line and exit 2,
before any Ray cluster or run directory exists; a spec written only in YAML runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.paths import REPO_ROOT

# Runs the CLI in a fresh interpreter and reports whether Ray was ever imported there (a cluster needs it).
PROBE = "import sys; from harness.cli import main; code = main(sys.argv[1:]); print('RAY', 'ray' in sys.modules); sys.exit(code)"


def harness(args, env_extra, tmp_path):
    env = {**os.environ, "HARNESS_RESULTS": str(tmp_path / "results"), **env_extra}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=600)


@pytest.fixture
def specs_dir(tmp_path):
    """A copy of specs/ a test may add files to (HARNESS_SPECS_DIR)."""
    directory = tmp_path / "specs"
    shutil.copytree(REPO_ROOT / "specs", directory)
    return directory


def assert_fails_fast(done, tmp_path, *fragments):
    errors = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "RAY False" in done.stdout  # no cluster was started
    assert not (tmp_path / "results").exists()  # no run directory


def test_unknown_prompt_profile(tmp_path):
    done = harness(["eval", "--task", "needle", "--model", "tiny-uniform", "--prompt", "nope", "--no-wandb"], {},
                   tmp_path)
    assert_fails_fast(done, tmp_path, "unknown prompt profile 'nope'", "valid: ['lmms-eval', 'vilamp']")


def eval_spec(tmp_path, specs_dir, name, entry):
    """`harness eval` of spec `name`, written (its YAML lines after the name) into specs_dir/mine.yaml."""
    (specs_dir / "mine.yaml").write_text(f"specs:\n  - name: {name}\n" + "".join(f"    {line}\n" for line in entry))
    return harness(["eval", "--task", "needle", "--model", name, "--no-wandb"], {"HARNESS_SPECS_DIR": str(specs_dir)},
                   tmp_path)


def test_spec_yaml_with_an_unknown_selector_argument(tmp_path, specs_dir):
    done = eval_spec(tmp_path, specs_dir, "my-typo", ["description: a typo in a selector argument", "backbone: tiny",
                                                      "selector: {name: uniform, frames: 8}", "answer: option_letter"])
    assert_fails_fast(done, tmp_path, "mine.yaml", "my-typo", "unknown key(s) ['frames']", "'n'", "'fps'")


def test_merging_reducer_on_qwen25vl(tmp_path, specs_dir):
    done = eval_spec(tmp_path, specs_dir, "qwen-tome", ["description: ToMe tokens have no M-RoPE position",
                                                        "backbone: {name: qwen25vl, tiny_seed: 0}",
                                                        "selector: {name: uniform, n: 4}", "reducer: tome"])
    assert_fails_fast(done, tmp_path, "qwen-tome", "reducer 'tome' merges tokens", "M-RoPE", "reducers it can take")


def test_a_spec_written_only_in_yaml_runs(tmp_path, specs_dir):
    (specs_dir / "mine.yaml").write_text(
        "specs:\n  - name: my-tiny-tome\n    description: tiny backbone, 8 uniform frames, ToMe keeping half\n"
        "    backbone: tiny\n    selector: {name: uniform, n: 8}\n    reducer: {name: tome, keep_ratio: 0.5}\n"
        "    answer: option_letter\n")
    env = {"HARNESS_SPECS_DIR": str(specs_dir), "WORKERS": "1"}
    done = subprocess.run(["make", "-s", "eval", "MODEL=my-tiny-tome", "LIMIT=2"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600,
                          env={**os.environ, "HARNESS_RESULTS": str(tmp_path / "results"), **env})
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (tmp_path / "results").glob("needle__my-tiny-tome__*")
    lines = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and {line["status"] for line in lines} <= {"ok"}
    assert all(line["visual_tokens"] == 8 * 16 // 2 + 1 for line in lines)  # 8 frames × 16 tokens, half kept
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_spec"]["reducer"] == {"name": "tome", "args": {"keep_ratio": 0.5}}
    assert Path(run_dir / "summary.json").is_file()


def test_an_override_with_an_unknown_key(tmp_path):
    done = harness(["eval", "--task", "needle", "--model", "tiny-uniform", "--set", "selector.nn=8", "--no-wandb"], {},
                   tmp_path)
    assert_fails_fast(done, tmp_path, "selector.nn=8", "unknown key(s) ['nn']", "allowed:", "'n'", "'fps'")


def test_overrides_make_their_own_spec_and_hash():
    from harness.evaluate import EvalRequest, config_hash, resolve

    plain = resolve(EvalRequest(task="needle", model="tiny-uniform", limit=1))
    changed = resolve(EvalRequest(task="needle", model="tiny-uniform", limit=1,
                                  overrides=("selector.n=8", "reducer.name=tome", "reducer.keep_ratio=0.5")))
    assert changed.spec.name == "tiny-uniform@selector.n=8,reducer.name=tome,reducer.keep_ratio=0.5"
    assert changed.config["model_spec"]["selector"] == {"name": "uniform", "args": {"n": 8}}
    assert changed.config["model_spec"]["reducer"] == {"name": "tome", "args": {"keep_ratio": 0.5}}
    assert changed.config["overrides"] == ["selector.n=8", "reducer.name=tome", "reducer.keep_ratio=0.5"]
    assert config_hash(changed.config) != config_hash(plain.config)
