"""P7 (issue 17): our `harness eval` against lmms-eval, same model, docs, frames, prompt and decoding, side by side.

`python -m harness.bench.lmms_speed [--out DIR] [--samples 24] [--workers 1 2] [--repeats 2]` writes
DIR/lmms_speed.json (default results/bench/) and prints the table; `make bench` runs it.

Workload. N needle questions over 1-3 minute mp4s (10 fps, 320x180, keyframe interval 250), copied into a scratch
dir with the docs as json and two task definitions over them: an lmms-eval local task in its own YAML format
(`--include_path`, as tests/interop/test_lmms_plugin.py) and the same docs as a task of ours (HARNESS_TASKS_DIR).
Both run the tiny seed-0 LLaVA-OV checkpoint (`TinyBackbone.tiny_checkpoint(0)`); 32 frames at
`linspace(0, total - 1, 32).astype(int)` read by decord (lmms-eval llava_hf.py `load_video`; our `uniform` with
n=32 has the same rule, so the selector is unchanged); the same user text (question, "A. ..." options, lmms-eval's
generic post-prompt) in the checkpoint's chat template, video first; free greedy decoding of at most 16 new tokens
(ours: `tiny-uniform` with answer=generate, not its one-step option-letter answer).

lmms-eval: `lmms-eval --model llava_hf --force_simple`: lmms-eval's transformers LlavaOnevision class
(lmms_eval/models/simple/llava_hf.py; without --force_simple `llava_hf` resolves to its chat class, which passes
the video path to the HF processor and ignores max_frames_num), with `device_map=cpu` (its default "" is rejected
by transformers 5: "When passing device_map as a string, the value needs to be a device name (e.g. cpu, cuda:0) or
'auto', ... but found ."). Two processes, found by trying: `accelerate launch --num_processes 2` on a machine
without GPUs starts ONE process (accelerate's simple_launcher); with ACCELERATE_USE_CPU=true the Accelerator is
MULTI_CPU and llava_hf's multi-process branch moves each rank to cuda:<rank> ("Found no NVIDIA driver on your
system"). What works: `accelerate launch --multi_gpu --num_processes 2` starts two torch-elastic ranks with a
process group (gloo for CPU tensors) while each rank's Accelerator says one process, so llava_hf stays on its
single-device branch; lmms-eval sees the initialised group, takes its torchrun path, shards the docs by
RANK/WORLD_SIZE and gathers over gloo. Ours: `harness eval --workers N` (N model and N decode actors on its own
local Ray). One torch thread per model worker on both sides (OMP_NUM_THREADS=1; ours --threads-per-worker 1).

Timed, the fastest of `--repeats` runs per tool (in turns; load from others only adds time). End to end: the wall
time of the whole command (interpreter, imports, model load, Ray or the process group, the samples, the results).
Steady state, start-up excluded: ours, the runner's makespan (first sample handed out -> last result in,
summary.json); lmms-eval, first doc_to_visual call of any rank (where each request starts) -> first
process_results call (postprocessing starts once every rank finished generating), stamped by the task's hooks.

Agreement: per doc, both generated texts after strip (lmms-eval strips its logged replies; ours keep a leading
space); the fraction identical, and whether both read the same frames. Every doc agreed in the runs here. Dumping
both sides' inputs for one doc (needle_retrieval_1800_0) shows why: the same frame indices, bit-identical decoded
frames and processor pixels, the same text token ids around the video (lmms-eval's 513 expanded <video> tokens =
our 512 visual tokens + image_newline), LLM input embeddings equal to the last bit, and the same 16 generated ids.
The one rule that can still part them: lmms-eval stops only at the tokenizer's eos <|im_end|> (llava_hf passes
eos_token_id=tokenizer.eos_token_id), ours also at <|endoftext|> (the checkpoint's generation_config); no reply
here stopped before 16 tokens, so it never applied.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from harness.backbones.llava_ov import TinyBackbone
from harness.core.paths import REPO_ROOT, cache_dir
from harness.data.needle import NeedleConfig, ensure_needle_dataset
from harness.data.needle.config import KINDS
from harness.results.summary import markdown_table

LENGTHS = (600, 1200, 1800)  # frames at 10 fps: 1, 2 and 3 minute videos
FRAMES = 32  # lmms-eval llava_hf's default max_frames_num
MAX_NEW_TOKENS = 16  # our tasks' default (tasks/_base_mcq.yaml)
TASK = "p7_local"
SPEC = "tiny-uniform"
SPEC_SET = ("answer=generate", f"selector.n={FRAMES}")
STAMPS_ENV = "P7_STAMPS"  # the directory the lmms-eval task's hooks write their timestamps to
# lmms-eval's generic video MCQ post-prompt, as in tasks/_base_mcq.yaml's `lmms-eval` profile.
POST_PROMPT = "Answer with the option's letter from the given choices directly."
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline",
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
LMMS_BIN = REPO_ROOT / ".venv-lmms" / "bin"
# The agreement's explanation, from dumping both sides' inputs for one doc (module docstring, Agreement).
INSPECTED = ("one doc's inputs dumped on both sides (needle_retrieval_1800_0): same frame indices, bit-identical "
             "decoded frames and processor pixels, same text token ids around the video (lmms-eval's 513 <video> "
             "tokens = our 512 visual + image_newline), LLM input embeddings equal (max |diff| 0.0), same 16 "
             "generated ids; the two greedy loops (transformers generate over input_ids + pixel_values_videos, ours "
             "over inputs_embeds with an explicit KV cache) run the same forward passes")
STOP_RULE = ("lmms-eval stops only at <|im_end|> (eos_token_id=tokenizer.eos_token_id), ours also at <|endoftext|> "
             "(generation_config): a reply emitting <|endoftext|> before max_new_tokens would go on in lmms-eval")


@dataclass(frozen=True)
class Workload:
    scratch: Path
    docs: tuple[dict[str, Any], ...]
    checkpoint: Path
    lmms_tasks: Path
    our_tasks: Path


@dataclass(frozen=True)
class ToolRun:
    """One command's outcome: its wall time, its steady-state window and its text per doc id."""

    tool: str
    wall_s: float
    steady_s: float
    texts: dict[str, str]
    frame_indices: dict[str, list[int]]  # ours logs them; lmms-eval's are recomputed from its rule
    startup_s: float  # ours: the runner's (Ray + actors loading); lmms-eval: the wall outside its window
    generated_tokens: dict[str, int]  # ours logs them; lmms-eval's simple models do not


def videos(samples: int, lengths: tuple[int, ...]) -> NeedleConfig:
    """Enough 10 fps needle questions (one video each) for `samples` docs; 320x180 with x264's default keyframe
    interval of 250 frames, as harness.bench.speed's P1 video, so reading 32 frames decodes most of the file."""
    per_cell = max(1, math.ceil(samples / (len(KINDS) * len(lengths))))
    return NeedleConfig(lengths=lengths, fps=10.0, per_cell=per_cell, size=(320, 180), gop=250)


def pick_docs(rows: list[dict[str, Any]], n: int) -> tuple[dict[str, Any], ...]:
    """`n` questions spread evenly over the dataset's rows (its kind × length cells), as docs."""
    picked = [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, n).astype(int))]
    return tuple({"id": r["question_id"], "video": r["video"], "question": r["question"],
                  "options": list(r["options"]), "answer": r["answer"]} for r in picked)


LMMS_TASK = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files: {docs}
test_split: train
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
process_results: !function utils.process_results
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
"""
LMMS_UTILS = """\
import json
import os
import time


def stamp(event, doc):  # when a process starts a doc, and when it scores one: the steady-state window
    with open(os.path.join(os.environ["{stamps_env}"], f"{{os.getpid()}}.jsonl"), "a") as out:
        out.write(json.dumps({{"event": event, "id": doc["id"], "t": time.time()}}) + "\\n")


def doc_to_visual(doc):
    stamp("start", doc)
    return [os.path.join({root!r}, doc["video"])]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    options = "\\n".join(f"{{chr(65 + i)}}. {{text}}" for i, text in enumerate(doc["options"]))
    return doc["question"] + "\\n" + options + "\\n" + {post!r}


def process_results(doc, results):
    stamp("scored", doc)
    return {{"accuracy": float(results[0].strip()[:1] == doc["answer"])}}
"""
OUR_TASK = """\
task: {task}
dataset: {{files: [docs.json], root: "{root}"}}
fields: {{id: id, video: video, question: question, options: options, answer: answer}}
prompts: {{lmms-eval: {{user: "{{question}}\\n{{options}}\\n{post}"}}}}
default_prompt: lmms-eval
generation: {{max_new_tokens: {max_new_tokens}}}
"""


def write_workload(scratch: Path, samples: int, lengths: tuple[int, ...] = LENGTHS) -> Workload:
    """The docs, their videos and both task definitions in `scratch`; the videos are generated once into the cache."""
    config = videos(samples, lengths)
    root = cache_dir() / "bench_lmms_speed" / f"{'-'.join(map(str, lengths))}x{config.per_cell}"
    docs = pick_docs(pq.read_table(ensure_needle_dataset(root, config)).to_pylist(), samples)
    (scratch / "videos").mkdir(parents=True, exist_ok=True)
    for doc in docs:  # our tasks read only below their data root: the scratch dir holds the docs and their videos
        shutil.copyfile(root / doc["video"], scratch / doc["video"])
    (scratch / "docs.json").write_text(json.dumps(docs))
    lmms_tasks, our_tasks = scratch / "lmms_tasks", scratch / "our_tasks"
    lmms_tasks.mkdir(exist_ok=True)
    our_tasks.mkdir(exist_ok=True)
    (lmms_tasks / f"{TASK}.yaml").write_text(LMMS_TASK.format(task=TASK, docs=scratch / "docs.json",
                                                              max_new_tokens=MAX_NEW_TOKENS))
    (lmms_tasks / "utils.py").write_text(LMMS_UTILS.format(root=str(scratch), post=POST_PROMPT,
                                                           stamps_env=STAMPS_ENV))
    (our_tasks / f"{TASK}.yaml").write_text(OUR_TASK.format(task=TASK, root=scratch, post=POST_PROMPT,
                                                            max_new_tokens=MAX_NEW_TOKENS))
    return Workload(scratch, docs, TinyBackbone.tiny_checkpoint(0), lmms_tasks, our_tasks)


def lmms_frame_indices(path: Path) -> list[int]:
    """The frames lmms-eval's llava_hf `load_video` reads: linspace over decord's frame count, cast to int."""
    import decord

    total = len(decord.VideoReader(str(path), ctx=decord.cpu(0)))
    return np.linspace(0, total - 1, FRAMES, dtype=int).tolist()


def timed(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> float:
    """Run `cmd` to the end (its output into `log`); its wall time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {log.read_text()[-3000:]}")
    return wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_text(response: str | list) -> str:
    """A logged lmms-eval response as text: a string, or the first of (nested) lists of them."""
    while isinstance(response, list):
        response = response[0]
    return str(response)


def run_lmms(work: Workload, processes: int, out: Path) -> ToolRun:
    stamps = out / "stamps"
    stamps.mkdir(parents=True)
    env = {**os.environ, **OFFLINE, STAMPS_ENV: str(stamps)}
    args = ["--model", "llava_hf", "--force_simple", "--model_args",
            f"pretrained={work.checkpoint},device_map=cpu,max_frames_num={FRAMES}", "--device", "cpu",
            "--tasks", TASK, "--include_path", str(work.lmms_tasks), "--batch_size", "1",
            "--output_path", str(out / "lmms"), "--log_samples"]
    if processes == 1:
        cmd = [str(LMMS_BIN / "lmms-eval"), *args]
    else:
        cmd = [str(LMMS_BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()), "-m", "lmms_eval", *args]
    wall = timed(cmd, env, work.scratch, out / "lmms.log")
    found = sorted((out / "lmms").rglob(f"*_samples_{TASK}.jsonl"))
    if not found:  # lmms-eval logs a failed evaluation and exits 0
        raise RuntimeError(f"lmms-eval wrote no samples: {(out / 'lmms.log').read_text()[-3000:]}")
    lines = [json.loads(line) for line in found[-1].read_text().splitlines()]
    texts = {work.docs[line["doc_id"]]["id"]: first_text(line["filtered_resps"]) for line in lines}
    events = [json.loads(line) for f in stamps.glob("*.jsonl") for line in f.read_text().splitlines()]
    first = min(e["t"] for e in events if e["event"] == "start")
    steady = min(e["t"] for e in events if e["event"] == "scored") - first
    frames = {doc["id"]: lmms_frame_indices(work.scratch / doc["video"]) for doc in work.docs}
    return ToolRun("lmms-eval", wall, steady, texts, frames, wall - steady, {})


def run_ours(work: Workload, workers: int, out: Path) -> ToolRun:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, never a shared one
    env.update(OFFLINE, HARNESS_TASKS_DIR=str(work.our_tasks))
    cmd = [sys.executable, "-m", "harness", "eval", "--task", TASK, "--model", SPEC, "--set", *SPEC_SET,
           "--workers", str(workers), "--out", str(out / "ours"), "--no-wandb"]
    wall = timed(cmd, env, REPO_ROOT, out / "ours.log")
    (run,) = (out / "ours").glob(f"{TASK}__*")
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    runner = json.loads((run / "summary.json").read_text())["runner"]
    return ToolRun("ours", wall, runner["makespan_s"], {s["id"]: s["raw_output"] for s in samples},
                   {s["id"]: s["frame_indices"] for s in samples}, runner["startup_s"],
                   {s["id"]: s["generated_tokens"] for s in samples})


def agreement(docs: tuple[dict[str, Any], ...], ours: ToolRun, lmms: ToolRun) -> dict[str, Any]:
    """Per doc, both texts after strip and whether they (and the frames each read) are the same; the fraction
    identical over all docs (a doc one side did not answer counts as different)."""
    pairs = []
    for doc in docs:
        a, b = ours.texts.get(doc["id"]), lmms.texts.get(doc["id"])
        pairs.append({"id": doc["id"], "ours": a, "lmms_eval": b,
                      "identical": a is not None and b is not None and a.strip() == b.strip(),
                      "same_frames": ours.frame_indices.get(doc["id"]) == lmms.frame_indices.get(doc["id"]),
                      "ours_generated_tokens": ours.generated_tokens.get(doc["id"])})
    same = sum(p["identical"] for p in pairs)
    return {"identical_fraction": same / len(pairs) if pairs else 0.0, "identical": same, "docs": len(pairs),
            "pairs": pairs}


def fastest(runs: list[ToolRun], n: int) -> dict[str, Any]:
    """samples/s from the fastest of the repeats, end to end and steady state apiece (on a shared machine other
    load only adds time, as harness.bench.speed.best_times argues), with every repeat's times."""
    return {"samples_per_s_end_to_end": n / min(r.wall_s for r in runs),
            "samples_per_s_steady": n / min(r.steady_s for r in runs),
            "wall_s": [r.wall_s for r in runs], "steady_s": [r.steady_s for r in runs],
            "startup_s": [r.startup_s for r in runs],
            "same_texts_every_repeat": all(r.texts == runs[0].texts for r in runs)}


def compare(work: Workload, workers: int, out: Path, repeats: int) -> dict[str, Any]:
    """Both tools at `workers`, `repeats` times in turns (who goes first alternates, so drifting load hits both)."""
    runs: dict[str, list[ToolRun]] = {"ours": [], "lmms-eval": []}
    loads = []
    for repeat in range(repeats):
        loads.append(os.getloadavg()[0])
        for run in (run_lmms, run_ours) if repeat % 2 == 0 else (run_ours, run_lmms):
            result = run(work, workers, out / f"{run.__name__}_{workers}_{repeat}")
            runs[result.tool].append(result)
    n = len(work.docs)
    mine, theirs = fastest(runs["ours"], n), fastest(runs["lmms-eval"], n)
    return {"workers": workers, "samples": n, "repeats": repeats, "load_avg_1m_before": loads,
            "ours": mine, "lmms_eval": theirs,
            "ratio_end_to_end": mine["samples_per_s_end_to_end"] / theirs["samples_per_s_end_to_end"],
            "ratio_steady": mine["samples_per_s_steady"] / theirs["samples_per_s_steady"],
            **agreement(work.docs, runs["ours"][0], runs["lmms-eval"][0])}


def explain(settings: list[dict[str, Any]]) -> dict[str, Any]:
    """Why the predictions agree or not: frames read, replies cut short by a stop token, the docs that differ."""
    pairs = [p for s in settings for p in s["pairs"]]
    same_frames = [p for p in pairs if p["same_frames"]]
    return {"inspection": INSPECTED, "stop_rule": STOP_RULE,
            "same_frames": f"{len(same_frames)}/{len(pairs)}",
            "identical_when_same_frames": f"{sum(p['identical'] for p in same_frames)}/{len(same_frames)}",
            "ours_stopped_before_max_new_tokens": sum((p["ours_generated_tokens"] or 0) < MAX_NEW_TOKENS
                                                      for p in pairs),
            "differing": sorted({p["id"] for p in pairs if not p["identical"]})}


def table(settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in settings:
        o, t = s["ours"], s["lmms_eval"]
        rows.append({"id": "P7", "workers": s["workers"], "samples": s["samples"],
                     "ours samples/s (end to end)": round(o["samples_per_s_end_to_end"], 3),
                     "lmms-eval samples/s (end to end)": round(t["samples_per_s_end_to_end"], 3),
                     "ratio ours/lmms-eval (end to end)": round(s["ratio_end_to_end"], 2),
                     "ours samples/s (steady)": round(o["samples_per_s_steady"], 2),
                     "lmms-eval samples/s (steady)": round(t["samples_per_s_steady"], 2),
                     "ratio ours/lmms-eval (steady)": round(s["ratio_steady"], 2),
                     "identical predictions": f"{s['identical']}/{s['docs']} ({s['identical_fraction']:.2f})"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.lmms_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "bench")
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="model workers / lmms-eval processes")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each tool per setting (the fastest counts)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS), help="video lengths in frames")
    args = parser.parse_args(argv)
    if not (LMMS_BIN / "lmms-eval").exists():
        raise SystemExit(f"{LMMS_BIN / 'lmms-eval'} missing: create it with `make lmms-venv`")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        work = write_workload(Path(scratch), args.samples, tuple(args.lengths))
        settings = [compare(work, workers, Path(scratch), args.repeats) for workers in args.workers]
    rows = table(settings)
    machine = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "platform": platform.platform()}
    result = {"P7": settings, "table": rows, "agreement": explain(settings), "machine": machine,
              "workload": {"docs": [d["id"] for d in work.docs], "video_lengths_frames": list(args.lengths),
                           "video_fps": 10.0, "frames": FRAMES, "max_new_tokens": MAX_NEW_TOKENS,
                           "checkpoint": str(work.checkpoint), "spec": [SPEC, *SPEC_SET],
                           "threads_per_worker": 1},
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = args.out / "lmms_speed.json"
    path.write_text(json.dumps(result, indent=2))
    print(markdown_table(rows))
    print(f"\nload average {machine['load_avg_1m']:.1f} on {machine['cpus']} cores; written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
