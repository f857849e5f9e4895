"""`make bench`: the runner's speed, measured side by side in one run, written to results/bench/runner.json.

P1  frame sampling at 1 fps from a 30 fps video: the harness's decode stage (PyAV; decord for comparison) vs
    the `ffmpeg` command line decoding the same frames vs a sequential OpenCV read keeping every int(fps)-th
    frame (ViLAMP's eval scripts, `access_video_by_sec`); and the floors: every frame decoded, nothing converted
    or output, by the CLI and in-process (PyAV), and how many frames any exact decoder must decode (each wanted
    frame from its keyframe on, as in the P1 video every frame is a reference frame).
P2  pipelining: end-to-end wall time vs max(decode busy time, model busy time), one decode worker and one
    model actor whose step costs a fixed time (the fixed-cost backbone), on the needle task; and the floor: the
    same per-sample stage times through a perfect two-stage pipeline in the run's order (flow_shop_makespan).
P3  2 model actors vs 1 (speed-up) and the makespan vs the ideal max(model work / actors, decode work /
    decoders, longest sample), with a model cost proportional to the frames (long videos cost more).
P4  harness overhead per sample: driver time outside ray.wait (queue, bookkeeping, journal: a flush per line,
    fsync on the journal's own thread at most once a second) plus building the scored summary, divided by the
    samples: the median of 3 runs of P3's 2-actor configuration, with the driver thread's CPU time beside it.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

from harness.core.paths import REPO_ROOT, cache_dir
from harness.data.needle import NeedleConfig, ensure_needle_dataset
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.model.specs import Component, ModelSpec
from harness.results.summary import build_summary, markdown_table, provenance
from harness.run.calls import run_order
from harness.run.config import RunnerConfig, RunStats
from harness.run.journal import Journal
from harness.run.pipeline import Decoded, Pipeline
from harness.run.runner import Runner
from harness.video.reader import keyframe_positions

TARGETS = {"P1": 0.75, "P2": 1.05, "P3_speedup": 1.8, "P3_makespan": 1.1, "P4_ms": 2.0}
P4_RUNS = 3


def best_times(contenders: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Each contender's fastest of `repeats` runs, taken in turns so that drifting machine load hits all alike
    (the minimum, since decoding a fixed file is fixed work and only interference adds time)."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(ts) for name, ts in times.items()}, outputs


# ---------------------------------------------------------------- P1


def p1_video(seconds: int) -> Path:
    """A 30 fps needle video with a 250-frame GOP (x264's default keyint), generated once into the cache."""
    config = NeedleConfig(lengths=(30 * seconds,), fps=30.0, per_cell=1, kinds=("retrieval",), size=(320, 180),
                          gop=250)
    root = cache_dir() / f"bench_p1_{seconds}s"
    ensure_needle_dataset(root, config)
    return next((root / "videos").glob("*.mp4"))


def ffmpeg_frames(path: Path, indices: tuple[int, ...], width: int, height: int, threads: int) -> np.ndarray:
    steps = {b - a for a, b in zip(indices, indices[1:])}
    if len(steps) == 1:  # 1 fps from a constant frame rate: an arithmetic progression (a long eq() sum fails)
        (k,) = steps
        select = f"between(n\\,{indices[0]}\\,{indices[-1]})*not(mod(n-{indices[0]}\\,{k}))"
    else:
        select = "+".join(f"eq(n\\,{i})" for i in indices)
    cmd = ["ffmpeg", "-v", "error", "-threads", str(threads), "-i", str(path), "-vf", f"select={select}",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def ffmpeg_decode_all(path: Path) -> None:
    """Every frame decoded by the CLI on one thread, none converted or output: the CLI's own floor."""
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)


def pyav_decode_all(path: Path) -> int:
    """Every frame decoded in-process on one thread, none converted: the floor of a decoder that decodes all."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        return sum(1 for _ in container.decode(stream))


def frames_to_decode(keyframes: tuple[int, ...], wanted: tuple[int, ...]) -> int:
    """Frames an exact decoder must decode for sorted `wanted` (presentation order, no frame skippable between a
    keyframe and a wanted frame after it): from each wanted frame's keyframe up to the last wanted frame before
    the next keyframe."""
    needed, last_key, last_end = 0, None, -1
    for frame in wanted:
        key = keyframes[bisect.bisect_right(keyframes, frame) - 1] if keyframes and keyframes[0] <= frame else 0
        needed += frame - key + 1 if key != last_key else frame - last_end  # restart at a new keyframe
        last_key, last_end = key, frame
    return needed


def opencv_1fps(path: Path) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(path))
    step, frames, n = int(cap.get(cv2.CAP_PROP_FPS)), [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n % step == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        n += 1
    cap.release()
    return np.stack(frames)


def bench_p1(seconds: int, repeats: int) -> dict[str, Any]:
    path = p1_video(seconds)
    spec = ModelSpec("bench", "P1", Component("fixed-cost"), Component("uniform", {"fps": 1.0, "max_frames": 10**6}))
    pipeline = Pipeline(spec, get_task("needle"))
    with_decord = Pipeline(spec, dataclasses.replace(get_task("needle"), video_backend="decord"))
    from harness.core.records import Sample

    sample = Sample(id="p1", task="bench", video=str(path), question="", options=(), answer=None)
    first = pipeline.decode(sample)  # the frame indices the harness samples, which the other decoders read too
    assert isinstance(first, Decoded), first
    frames = first.frames
    indices, (h, w) = frames.indices, frames.pixels.shape[1:3]
    contenders: dict[str, Callable[[], Any]] = {"harness": lambda: pipeline.decode(sample),
                                                "harness_decord": lambda: with_decord.decode(sample),
                                                "pyav_decode_all": lambda: pyav_decode_all(path),
                                                "opencv": lambda: opencv_1fps(path)}
    has_ffmpeg = shutil.which("ffmpeg") is not None
    if has_ffmpeg:
        contenders["ffmpeg_1thread"] = lambda: ffmpeg_frames(path, indices, w, h, 1)
        contenders["ffmpeg_auto_threads"] = lambda: ffmpeg_frames(path, indices, w, h, 0)
        contenders["ffmpeg_decode_all"] = lambda: ffmpeg_decode_all(path)
    best, outputs = best_times(contenders, repeats)
    harness_s = best["harness"]
    out: dict[str, Any] = {"video": str(path), "video_frames": first.meta.num_frames, "fps": first.meta.fps,
                           "frames_sampled": len(indices), "harness_s": harness_s, "repeats": repeats,
                           "timing": "fastest of the repeats, contenders in turns"}
    out.update(frames_to_decode=frames_to_decode(keyframe_positions(str(path)), indices),
               harness_decord_s=best["harness_decord"], pyav_decode_all_s=best["pyav_decode_all"],
               pyav_decode_all_frames=outputs["pyav_decode_all"], opencv_s=best["opencv"],
               opencv_frames=len(outputs["opencv"]), ratio_vs_opencv=harness_s / best["opencv"])
    decord_frames = outputs["harness_decord"].frames.pixels
    out["decord_vs_harness_max_abs_diff"] = int(np.abs(decord_frames.astype(np.int16) - frames.pixels).max()) \
        if decord_frames.shape == frames.pixels.shape else None
    if not has_ffmpeg:
        out["ffmpeg"] = "unavailable: `ffmpeg` is not on PATH (make bench installs it with apt-get)"
        return out
    ffmpeg_s = best["ffmpeg_1thread"]
    for key in ("ffmpeg_1thread", "ffmpeg_auto_threads"):
        out[f"{key}_s"] = best[key]
        out[f"ratio_vs_{key}"] = harness_s / best[key]
    out.update(ffmpeg_decode_all_s=best["ffmpeg_decode_all"],
               decode_all_vs_ffmpeg_1thread=best["ffmpeg_decode_all"] / ffmpeg_s,
               ratio_vs_ffmpeg_decode_all=harness_s / best["ffmpeg_decode_all"],
               pyav_decode_all_vs_ffmpeg_1thread=best["pyav_decode_all"] / ffmpeg_s,
               harness_decord_vs_ffmpeg_1thread=best["harness_decord"] / ffmpeg_s)
    ff = outputs["ffmpeg_1thread"]
    out["ffmpeg_frames"] = len(ff)
    # Same frames? Mean absolute pixel difference (decoders may differ in colour conversion by a level or two).
    out["ffmpeg_mean_abs_diff"] = float(np.abs(ff.astype(np.int16) - frames.pixels.astype(np.int16)).mean()) \
        if len(ff) == len(frames) else None
    return out


# ---------------------------------------------------------------- P2–P4


def fixed_cost(step_s: float, per_frame_s: float) -> ModelSpec:
    return ModelSpec("bench-fixed-cost", "runner benchmark", Component("fixed-cost", {"step_s": step_s,
                     "per_frame_s": per_frame_s}), Component("uniform", {"fps": 1.0, "max_frames": 600}))


def timed_run(samples: list, spec: ModelSpec, config: RunnerConfig, journal: Path | None = None
              ) -> tuple[RunStats, list]:
    results: list = []
    sink = Journal(journal) if journal else None

    def on_result(result: Any) -> None:
        results.append(result)
        if sink:
            sink.append(result)

    stats = Runner(samples, spec, get_task("needle"), None, config, on_result).run()
    if sink:
        sink.close()
    return stats, results


def flow_shop_makespan(stages: list[tuple[float, float]]) -> float:
    """Wall time of samples taken in this order by one decoder then one model, each busy exactly its stage time
    (a two-machine flow shop): the floor of a pipelined run with these stage times, whatever the runner does."""
    decoded = done = 0.0
    for decode, model in stages:
        decoded += decode
        done = max(done, decoded) + model
    return done


def bench_runner(out_dir: Path) -> dict[str, Any]:
    task = get_task("needle")
    samples = load_samples(task)
    out: dict[str, Any] = {"samples": len(samples)}
    # Warm-up: start the actors (kept across runs) and measure the mean decode time per sample.
    warm, _ = timed_run(samples, fixed_cost(0.0, 0.0), RunnerConfig(workers=1, decode_workers=1))
    step = warm.decode_busy_s / warm.samples  # P2's model step = mean decode time: the hardest case to overlap
    out["p2_model_step_s"] = step
    p2, p2_results = timed_run(samples, fixed_cost(step, 0.0), RunnerConfig(workers=1, decode_workers=1))
    seq, _ = timed_run(samples, fixed_cost(step, 0.0), RunnerConfig(workers=1, decode_in_model=True))
    # One decoder: the model takes the samples in the order they were handed out.
    times = {r.id: (r.timings_s.get("decode_total", 0.0), r.timings_s.get("infer_total", 0.0)) for r in p2_results}
    floor = flow_shop_makespan([times[s.id] for s in run_order(samples, p2.max_in_flight)])
    busy = max(p2.decode_busy_s, p2.model_busy_s)
    out["P2"] = {"pipelined": dataclasses.asdict(p2), "decode_in_model": dataclasses.asdict(seq),
                 "ratio": p2.makespan_s / busy, "floor_s": floor, "floor_ratio": floor / busy,
                 "wall_vs_floor": p2.makespan_s / floor,
                 "sequential_ratio": seq.makespan_s / max(seq.decode_busy_s, seq.model_busy_s)}
    per_frame = 0.002  # model cost ∝ frames: 32-512 frames → 0.06-1.0 s per sample
    p3: dict[str, Any] = {}
    config = {"bench": True}
    origin = provenance(config)  # once per run in `harness eval` too: not per-sample overhead
    for workers in (1, 2):
        journal = out_dir / f"bench_journal_{workers}.jsonl"
        journal.unlink(missing_ok=True)
        stats, results = timed_run(samples, fixed_cost(0.01, per_frame),
                                   RunnerConfig(workers=workers, decode_workers=2), journal)
        ideal = max(stats.model_busy_s / workers, stats.decode_busy_s / stats.decode_actors, stats.longest_sample_s)
        start = time.perf_counter()
        build_summary(results, task.metric, stats.makespan_s, config, stats=stats, origin=origin)
        scoring_s = time.perf_counter() - start
        p3[workers] = {**dataclasses.asdict(stats), "ideal_s": ideal, "makespan_vs_ideal": stats.makespan_s / ideal,
                       "scoring_s": scoring_s, "predictions": sorted((r.id, r.pred) for r in results)}
        journal.unlink()
    same = p3[1].pop("predictions") == p3[2].pop("predictions")
    out["P3"] = {"1_worker": p3[1], "2_workers": p3[2], "speedup": p3[1]["makespan_s"] / p3[2]["makespan_s"],
                 "makespan_vs_ideal": p3[2]["makespan_vs_ideal"], "identical_predictions": same}
    # P4 on 36 samples moves by a millisecond with one stall of the busy cores: the median of P4_RUNS runs (P3's
    # 2-actor run and more of the same), wall time and the driver thread's CPU time.
    runs = [p3[2]] + [dataclasses.asdict(timed_run(samples, fixed_cost(0.01, per_frame),
                                                   RunnerConfig(workers=2, decode_workers=2))[0])
                      for _ in range(P4_RUNS - 1)]
    per_sample = lambda key: [1000 * r[key] / r["samples"] for r in runs]  # noqa: E731
    scoring = 1000 * p3[2]["scoring_s"] / p3[2]["samples"]
    out["P4"] = {"runs": P4_RUNS, "driver_ms_per_sample": statistics.median(per_sample("driver_s")),
                 "driver_ms_per_sample_each": per_sample("driver_s"),
                 "driver_cpu_ms_per_sample": statistics.median(per_sample("driver_cpu_s")),
                 "scoring_ms_per_sample": scoring}
    out["P4"]["ms_per_sample"] = out["P4"]["driver_ms_per_sample"] + scoring
    return out


def table(p1: dict[str, Any], runner: dict[str, Any]) -> list[dict[str, Any]]:
    def row(name: str, what: str, value: float | None, target: str, met: bool | None) -> dict[str, Any]:
        shown = "n/a" if value is None else round(value, 3)
        return {"id": name, "measure": what, "value": shown, "target": target,
                "met": "n/a" if met is None else ("yes" if met else "NO")}

    ff1, ffa = p1.get("ratio_vs_ffmpeg_1thread"), p1.get("ratio_vs_ffmpeg_auto_threads")
    p2, p3, p4 = runner["P2"], runner["P3"], runner["P4"]
    return [
        row("P1", "harness decode / ffmpeg CLI (1 thread)", ff1, f"≤ {TARGETS['P1']}",
            None if ff1 is None else ff1 <= TARGETS["P1"]),
        row("P1", "harness decode / ffmpeg CLI (auto threads)", ffa, "info", None),
        row("P1", "harness decode / OpenCV sequential 1 fps", p1["ratio_vs_opencv"], "info", None),
        row("P1", "floor: ffmpeg CLI decoding every frame, no output / ffmpeg CLI",
            p1.get("decode_all_vs_ffmpeg_1thread"), "info", None),
        row("P1", "harness decode / that floor", p1.get("ratio_vs_ffmpeg_decode_all"), "info", None),
        row("P1", "floor in-process: PyAV decoding every frame / ffmpeg CLI",
            p1.get("pyav_decode_all_vs_ffmpeg_1thread"), "info", None),
        row("P1", "frames an exact decoder must decode / frames in the video",
            p1["frames_to_decode"] / p1["video_frames"], "info", None),
        row("P1", "harness decode with video_backend decord / ffmpeg CLI", p1.get("harness_decord_vs_ffmpeg_1thread"),
            "info", None),
        row("P2", "wall / max(decode busy, model busy), pipelined", p2["ratio"], "≤ 1.05", p2["ratio"] <= 1.05),
        row("P2", "floor: the same stage times in a perfect pipeline, in the run's order",
            p2["floor_ratio"], "info", None),
        row("P2", "wall / that floor (the runner's own cost)", p2["wall_vs_floor"], "info", None),
        row("P2", "same, decoding inside the model actor", p2["sequential_ratio"], "info", None),
        row("P3", "speed-up 2 model actors vs 1", p3["speedup"], "≥ 1.8", p3["speedup"] >= 1.8),
        row("P3", "makespan / ideal (2 actors)", p3["makespan_vs_ideal"], "≤ 1.1", p3["makespan_vs_ideal"] <= 1.1),
        row("P4", f"overhead ms per sample (queue+journal+scoring), median of {p4['runs']} runs", p4["ms_per_sample"],
            "≤ 2", p4["ms_per_sample"] <= 2.0),
        row("P4", "driver thread's CPU ms per sample", p4["driver_cpu_ms_per_sample"], "info", None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    parser.add_argument("--p1-seconds", type=int, default=120, help="length of the P1 video (30 fps)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from harness.run.raycluster import start_ray, stop_ray

    p1 = bench_p1(args.p1_seconds, args.repeats)
    start_ray(num_cpus=4, object_store_mb=512)  # 2 model + 2 decode actors (logical CPUs on a 2-core machine)
    try:
        with tempfile.TemporaryDirectory(dir=args.out) as scratch:
            runner = bench_runner(Path(scratch))
    finally:
        stop_ray()
    rows = table(p1, runner)
    import os
    import platform

    machine = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "platform": platform.platform()}
    result = {"P1": p1, **runner, "table": rows, "targets": TARGETS, "machine": machine,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = args.out / "runner.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(markdown_table(rows))
    print(f"\nload average {machine['load_avg_1m']:.1f} on {machine['cpus']} cores; written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
