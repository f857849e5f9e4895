"""`make vllm-smoke`: the vLLM backend (harness.backbones.vllm) on a tiny random LLaVA-OV, in two venvs.

`prepare DIR` runs in the main venv (tiny checkpoint + frames of one needle sample chosen by our sampler and its
rendered prompt); `run DIR` runs in .venv-vllm (load the engine, answer, print what came out).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from harness.backbones.vllm import VllmVideoModel
from harness.core.config import ConfigError
from harness.core.records import Frames, Prompt


def prepare(directory: Path) -> None:
    """Main venv: tiny checkpoint + frames of one needle sample chosen by our uniform sampler."""
    from transformers import LlavaOnevisionForConditionalGeneration

    from harness.backbones.llava_ov import build_tiny_model
    from harness.data.samples import load_samples
    from harness.data.tasks import get_task
    from harness.hf.checkpoints import ensure_built, save_all, seeded
    from harness.methods.selection import SELECTORS
    from harness.scoring.prompts import render
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
        with seeded(0):
            model = LlavaOnevisionForConditionalGeneration(config)
        model.generation_config = tiny.generation_config
        save_all(staging, model, processor)

    ensure_built(checkpoint, write)  # atomically: an interrupted prepare leaves nothing half-written
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
        print("usage: python -m harness.bench.vllm_smoke {prepare|run} DIR", file=sys.stderr)
        return 2
    try:
        (prepare if argv[0] == "prepare" else run)(Path(argv[1]))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
