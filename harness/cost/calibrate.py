"""The cost model against measurement, on the tiny specs' real models: peak memory and FLOPs of encode + reduce +
generate in a fresh process (one per backbone), against `estimate(spec, N, gpu=None)` on the tiny checkpoint's own
config.

Memory is the process's resident set above its baseline (after imports, the model's load and a warm-up, taken again
before each run): the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs before each run, so no
peak falls between two samples as it can with `PeakMemory`'s 5 ms sampler). The child runs with a fixed 64 KiB
malloc mmap threshold and trims the heap before each baseline: glibc otherwise keeps freed blocks below its sliding
threshold (up to 32 MiB) resident, and the RSS would show the allocator's retention, not the tensors alive. FLOPs
are FlopCounterMode's in the same run (it records shapes, no tensors), with SDPA's formula given to PyTorch's CPU
flash kernel, which the counter has no formula for (it uses that formula for the CUDA kernels).

    python -m harness.cost.calibrate [--model tiny-uniform --frames 128,384] [--decode 96x128]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.model.specs import MODELS, Component, ModelSpec

CASES = {"tiny-uniform": (128, 384), "tiny-fastv": (128, 320), "tiny-visionzip": (128, 384)}  # 25-250 MB peaks
DECODE = (96, 128)  # decoded frame size: resized by the processor to the tiny tower's 64×64
PROMPT = ("You are a helpful assistant.", "Which colour is the square? Answer with the option letter.")


@dataclass(frozen=True)
class Calibration:
    model: str
    frames: int
    measured_mb: float
    predicted_mb: float
    measured_flops: float
    predicted_flops: float
    stage: str  # where the model puts the peak

    @property
    def memory_error(self) -> float:
        return self.predicted_mb / self.measured_mb - 1

    @property
    def flops_error(self) -> float:
        return self.predicted_flops / self.measured_flops - 1


def calibrate(cases: dict[str, tuple[int, ...]], decode: tuple[int, int] = DECODE) -> list[Calibration]:
    """Measure each spec at its frame counts and set the estimates beside the measurements. The specs of one backbone
    share a fresh process (the model loads once; every run is measured from its own baseline); processes of different
    backbones run side by side."""
    from harness.cost.estimate import estimate  # the parent's only: the children measure

    groups: dict[str, list] = {}
    for model, counts in cases.items():
        spec = asdict(MODELS.get(model))  # specs travel as JSON: a child need not read every spec file
        groups.setdefault(json.dumps(spec["backbone"], sort_keys=True), []).append([spec, list(counts)])
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", HF_HUB_OFFLINE="1")
    children = [subprocess.Popen([sys.executable, "-m", "harness.cost.calibrate", "--child", json.dumps(group),
                                  "--decode", f"{decode[0]}x{decode[1]}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).resolve().parents[2])
                for group in groups.values()]
    out = []
    for child in children:
        stdout, stderr = child.communicate()
        if child.returncode:
            raise RuntimeError(f"calibration child failed:\n{stderr[-3000:]}")
        for m in (json.loads(line) for line in stdout.splitlines() if line.startswith("{")):
            cost = estimate(MODELS.get(m["model"]), m["frames"], None, decode, m["text_tokens"])
            out.append(Calibration(m["model"], m["frames"], m["above_mb"],
                                   (cost.peak_bytes - cost.weights_bytes) / 2**20, m["flops"],
                                   cost.vision_flops + cost.projector_flops + cost.prefill_flops, cost.peak_stage))
    return out


def _measure(cases: list[tuple[ModelSpec, list[int]]], decode: tuple[int, int]) -> None:
    """The child: load the (shared) backbone; per spec a warm-up, then per frame count one run, its memory and FLOPs
    measured together; one JSON line each."""
    import numpy as np
    import psutil
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    from harness.core.records import Frames, FrameSelection, GenerationConfig, Prompt, Sample
    from harness.methods.reduction import ReductionContext
    from harness.model.preflight import build_methods
    from harness.model.video_model import VideoModel

    torch.set_num_threads(1)
    backbone = VideoModel(cases[0][0]).backbone
    sample = Sample("calibration", "cost", "synthetic.mp4", "Which colour is the square?", ("red", "blue"), 0)
    prompt, config = Prompt(*PROMPT), GenerationConfig(max_new_tokens=1, choices=("A", "B"))
    libc = ctypes.CDLL("libc.so.6")

    def cpu_flash(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    for spec, counts in cases:
        reducer = build_methods(spec)[1]

        def once(n: int):
            pixels = np.random.default_rng(n).integers(0, 256, (n, *decode, 3), dtype=np.uint8)
            frames = Frames(tuple(range(n)), tuple(float(i) for i in range(n)), pixels, backend="synthetic")
            context = ReductionContext(sample, FrameSelection("uniform", frames.indices), frames, backbone)
            return backbone.generate(reducer.reduce(backbone.encode_frames(frames), context), prompt, config)

        flash = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash}
        with FlopCounterMode(display=False, depth=0, custom_mapping=flash):  # the warm-up: lazy loads, first calls
            once(2)
        for n in counts:
            gc.collect()
            libc.malloc_trim(0)
            base = psutil.Process().memory_info().rss
            with FlopCounterMode(display=False, depth=0, custom_mapping=flash) as counter:  # counts shapes: holds none
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
                generation = once(n)
            peak = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
            print(json.dumps({"model": spec.name, "frames": n, "above_mb": (peak - base) / 2**20,
                              "flops": counter.get_total_flops(), "text_tokens": generation.text_tokens}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a tiny spec (default: the calibration cases)")
    parser.add_argument("--frames", default=None, help="frame counts, comma-separated")
    parser.add_argument("--decode", default=f"{DECODE[0]}x{DECODE[1]}", help="decoded frame size HxW")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # [[spec as JSON, counts], …] to measure
    args = parser.parse_args(argv)
    decode = tuple(int(v) for v in args.decode.lower().split("x"))
    if args.child:
        cases = [(ModelSpec(**{**f, **{k: Component(**f[k]) for k in ("backbone", "selector", "reducer")}}), counts)
                 for f, counts in json.loads(args.child)]
        _measure(cases, decode)  # type: ignore[arg-type]
        return 0
    cases = {args.model: tuple(int(v) for v in args.frames.split(","))} if args.model else CASES
    for c in calibrate(cases, decode):  # type: ignore[arg-type]
        print(f"{c.model} N={c.frames}: memory {c.measured_mb:.1f} MB measured, {c.predicted_mb:.1f} predicted "
              f"({c.memory_error:+.1%}, peak at {c.stage}); FLOPs {c.measured_flops:.4g} measured, "
              f"{c.predicted_flops:.4g} predicted ({c.flops_error:+.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
