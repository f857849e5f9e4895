"""The lmms-eval model plugin, exercised in lmms-eval's own venv through its registry (entry point)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LMMS_PYTHON = ROOT / ".venv-lmms" / "bin" / "python"


def test_lmms_eval_finds_builds_and_runs_our_spec(write_test_video):
    if not LMMS_PYTHON.exists():
        pytest.fail(f"{LMMS_PYTHON} missing: create it with `make lmms-venv` (make test does this first)")
    video = write_test_video("clip.mp4", num_frames=24, fps=4.0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run([str(LMMS_PYTHON), str(ROOT / "tests" / "lmms_plugin_probe.py"), str(video.path),
                           "qwen25vl-tiny-uniform"], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["listed"] and out["class"] == "HarnessLMM"
    assert len(out["answers"]) == 1 and isinstance(out["answers"][0], str) and out["answers"][0]
    assert "unknown model_args ['frames']" in out["typo"]
