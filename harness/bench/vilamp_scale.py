"""ViLAMP scale benchmark: streamed DKS + DFM with the tiny encoders on 1K- and 10K-frame inputs.

Each size runs in a fresh process (so one run's allocator high-water mark cannot hide in the next), on synthetic
frames generated per chunk (the decoder is not what is measured). Peak memory is the process RSS sampled during
selection + merging (harness.core.measure.PeakMemory), reported absolute and above the RSS after the models loaded.
Writes results/bench/vilamp_scale.json; `python -m harness.bench.vilamp_scale [--sizes 1000 10000]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from harness.core.paths import results_dir

SIZES = (1000, 10_000)
MODELS = ("vilamp-tiny", "vilamp-tf")  # the official-layout model; training-free on the tiny backbone
QUESTION = "What color is the object that appears in the middle of the video?"


class SyntheticVideo:
    """Deterministic frames: 40-frame scenes of one colour each, plus per-frame noise; 48×64 RGB."""

    def read(self, indices):
        from harness.core.records import Frames

        pixels = np.empty((len(indices), 48, 64, 3), np.uint8)
        for row, i in enumerate(indices):
            scene = np.random.default_rng(i // 40).integers(0, 256, 3)
            noise = np.random.default_rng(10_000_000 + i).integers(-12, 13, (48, 64, 3))
            pixels[row] = np.clip(scene + noise, 0, 255)
        return Frames(tuple(indices), tuple(float(i) for i in indices), pixels, backend="synthetic")


def run_one(model: str, n: int, threads: int) -> dict:
    """One size in this process: load, warm up, then measure select_stream + reduce_stream."""
    import psutil
    import torch

    from harness.core.measure import PeakMemory
    from harness.core.records import Sample
    from harness.methods.reduction import ReductionContext
    from harness.model.specs import MODELS as SPECS
    from harness.model.video_model import VideoModel
    from harness.vilamp import vilamp_visual_tokens

    torch.set_num_threads(threads)
    spec = SPECS.get(model)
    spec = dataclasses.replace(spec, selector=dataclasses.replace(spec.selector,
                                                                  args={**spec.selector.args, "max_frames": n}))
    video_model = VideoModel(spec)
    backbone, selector, reducer = video_model.backbone, video_model.selector, video_model.reducer
    sample = Sample(id="bench", task="bench", video="", question=QUESTION, options=("a", "b"), answer=0)
    source = SyntheticVideo()

    def once(frames: int) -> tuple[int, int, dict[str, float]]:
        times = {}
        with torch.inference_mode():
            start = time.perf_counter()
            selection, meta = selector.select_stream(sample, tuple(range(frames)), source, backbone)
            times["select_s"] = time.perf_counter() - start
            start = time.perf_counter()
            visual = reducer.reduce_stream(source, ReductionContext(sample, selection, meta, backbone))
            times["merge_s"] = time.perf_counter() - start
        return len(selection.keyframes), len(visual) + 1, times  # + image_newline

    once(64)  # warm-up: lazy loads (tiny-clip) and first-call allocations are not part of the scale figure
    base_mb = psutil.Process().memory_info().rss / 2**20
    with PeakMemory("cpu") as memory:
        k, tokens, times = once(n)
    if tokens != vilamp_visual_tokens(n, k, backbone.tokens_per_frame):
        raise AssertionError(f"token count {tokens} ≠ formula for N={n}, K={k}")
    # ViLAMP merges unpooled patches (its "patch_features" hook): g² per frame; elsewhere the pooled tokens
    per_frame = backbone.grid ** 2 if "patch_features" in backbone.hooks else backbone.tokens_per_frame
    return {
        "model": model, "n_frames": n, "n_keyframes": k, "visual_tokens": tokens,
        "peak_rss_mb": round(memory.peak_mb, 1), "base_rss_mb": round(base_mb, 1),
        "peak_above_base_mb": round(memory.peak_mb - base_mb, 1),
        **{key: round(v, 2) for key, v in times.items()}, "total_s": round(sum(times.values()), 2),
        # what holding every frame's patch features at once would take (fp32), which streaming avoids
        "all_patch_features_mb": round(n * per_frame * backbone.hidden_size * 4 / 2**20, 1),
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", default=str(results_dir() / "bench" / "vilamp_scale.json"))
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.threads)))
        return 0
    runs = []
    for model in args.models:
        for n in args.sizes:
            print(f"vilamp bench: {model} N={n} ...", file=sys.stderr, flush=True)
            child = subprocess.run([sys.executable, "-m", "harness.bench.vilamp_scale", "--one", model, str(n),
                                    "--threads", str(args.threads)], capture_output=True, text=True,
                                   env=os.environ.copy())
            if child.returncode != 0:
                print(child.stderr[-2000:], file=sys.stderr)
                return child.returncode
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"  {runs[-1]}", file=sys.stderr)
    ratios = {}
    small, large = min(args.sizes), max(args.sizes)
    for model in args.models:
        by_n = {r["n_frames"]: r for r in runs if r["model"] == model}
        ratios[model] = {
            "peak_rss_ratio": round(by_n[large]["peak_rss_mb"] / by_n[small]["peak_rss_mb"], 3),
            "peak_above_base_ratio": round(
                by_n[large]["peak_above_base_mb"] / max(by_n[small]["peak_above_base_mb"], 1e-9), 3),
            "time_ratio": round(by_n[large]["total_s"] / by_n[small]["total_s"], 2),
        }
    report = {"benchmark": "vilamp_scale", "sizes": [small, large], "runs": runs,
              f"ratio_{large}_vs_{small}": ratios,
              "target": "peak memory at the large size ≤ 2× that at the small size",
              "meets_target": all(r["peak_rss_ratio"] <= 2.0 for r in ratios.values()),
              "note": "synthetic 48×64 frames; 2 shared CPU cores, so times are noisy"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(ratios, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
