"""Command line: `python -m harness {eval,sweep,score,rescore,compare,tasks,models,cost,prepare,verify}`.

Only this module maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path

from harness.core.config import ConfigError
from harness.core.registry import UnknownNameError
from harness.results.compare import CompareError
from harness.run.interrupt import Interrupted

EXIT_USAGE = 2


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {number}")
    return number


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Long-video VLM evaluation harness.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("eval", help="evaluate one model spec on a task or a suite of tasks")
    e.add_argument("--task", default="needle", help="a task, a suite, or a comma-separated list (see `harness tasks`)")
    e.add_argument("--model", default="canary-uniform-1fps", help="model spec (see `harness models`)")
    e.add_argument("--limit", type=_positive, default=None, help="only the first N samples")
    e.add_argument("--workers", type=_positive, default=_env_int("WORKERS") or os.cpu_count() or 1,
                   help="model actors (default: number of cores)")
    e.add_argument("--threads-per-worker", type=_positive, default=1)
    e.add_argument("--prompt", default=None, help="prompt profile (default: the task's)")
    e.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="change the spec's arguments: selector.n=64 reducer.keep_ratio=0.25 backbone.dtype=float16")
    e.add_argument("--video-backend", choices=("auto", "decord", "pyav"), default=None,
                   help="video decoder for probing and frames (default: the task's, auto: decord, PyAV fallback)")
    e.add_argument("--extractor", default=None,
                   help="answer extractor (default: the task's; lmms-eval: the task's lmms-eval-compatible one)")
    e.add_argument("--data-root", default=None, help="benchmark directory (default: the task's)")
    e.add_argument("--out", default=None, help="results root (default: results/)")
    e.add_argument("--device", default="cpu", help="cpu, or cuda: one model actor per GPU of the cluster")
    e.add_argument("--placement", choices=("auto", "cpu", "gpu"), default="auto",
                   help="gpu: one model actor per GPU (num_gpus=1; auto: when --device is cuda); gpu with --device cpu "
                        "schedules by GPU and computes on the CPU")
    e.add_argument("--ray-address", default=None, help="join an existing Ray cluster (or set RAY_ADDRESS)")
    e.add_argument("--no-wandb", action="store_true", help="skip the W&B run")
    e.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="finish an interrupted run: skip the samples in RUN_DIR/samples.jsonl (same config only)")
    e.add_argument("--decode-workers", type=_positive, default=None, help="CPU decode actors (default: --workers)")
    e.add_argument("--model-queue", type=_positive, default=None,
                   help="calls each model actor holds at once: the next waits on it while one runs (default: 2)")
    e.add_argument("--max-in-flight", type=_positive, default=None,
                   help="samples decoded or decoding at once, which bounds memory (default: model queue + 1 per "
                        "model actor)")
    e.add_argument("--sample-timeout", type=float, default=None, metavar="SECONDS",
                   help="record a sample as `timeout` when one stage runs longer (default: no limit)")
    e.add_argument("--max-retries", type=int, default=2, help="re-runs of a sample whose worker died")
    e.add_argument("--group", default=None, help="W&B group shared by the runs of one comparison (default: the task)")
    c = sub.add_parser("compare", help="compare finished runs: table, plots, report")
    c.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="results/<run_id> directories")
    c.add_argument("--out", type=Path, default=None, help="output directory (default: results/compare__<time>)")
    c.add_argument("--title", default=None, help="report title (default: task: model vs model)")
    c.add_argument("--reference", default=None, metavar="MODEL",
                   help="paired tests (McNemar, cluster bootstrap) of every run against this model's run of its task")
    sw = sub.add_parser("sweep", help="run a matrix of specs × tasks × overrides, then compare the cells")
    sw.add_argument("file", nargs="?", type=Path, default=None, help="a sweep YAML (sweeps/*.yaml)")
    sw.add_argument("--task", default=None, help="inline sweep: tasks or suites, comma-separated")
    sw.add_argument("--model", default=None, help="inline sweep: model specs, comma-separated")
    sw.add_argument("--grid", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                    help="inline sweep: override values, one cell per combination (selector.n=8,16,32)")
    sw.add_argument("--limit", type=_positive, default=None, help="only the first N samples of each task")
    sw.add_argument("--reference", default=None, metavar="MODEL", help="paired tests against this cell")
    sw.add_argument("--workers", type=_positive, default=_env_int("WORKERS") or os.cpu_count() or 1)
    sw.add_argument("--out", default=None, help="results root (default: results/); the sweep is <out>/<sweep>")
    sw.add_argument("--no-wandb", action="store_true", help="skip the W&B runs")
    sc = sub.add_parser("score", help="score a predictions file the harness did not produce")
    sc.add_argument("--task", required=True)
    sc.add_argument("--predictions", type=Path, required=True,
                    help='JSONL of {"id", "response"} (also lmms-eval\'s samples_<task>.jsonl, our samples.jsonl)')
    sc.add_argument("--annotations", default=None, help="annotation file as published (default: the task's)")
    sc.add_argument("--data-root", default=None, help="benchmark directory (default: the task's)")
    sc.add_argument("--out", default=None, help="output directory (default: results/<task>__score-<name>__<time>)")
    sc.add_argument("--extractor", default=None, help="answer extractor (default: the task's; or lmms-eval)")
    sc.add_argument("--name", default=None, help="model name in the summary (default: the predictions file's stem)")
    rs = sub.add_parser("rescore", help="re-extract a finished run's raw outputs into a new summary")
    rs.add_argument("run_dir", type=Path)
    rs.add_argument("--extractor", default=None, help="answer extractor (default: the task's; or lmms-eval)")
    rs.add_argument("--out", default=None, help="output directory (default: RUN_DIR/rescore__<extractor>)")
    nd = sub.add_parser("node", help="start one node of a Ray cluster (the head, or a worker) with no outside traffic")
    role = nd.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the head node")
    role.add_argument("--address", default=None, metavar="HOST:PORT", help="join the head at this address")
    nd.add_argument("--port", type=_positive, default=6379, help="the head's port (default: 6379)")
    nd.add_argument("--num-cpus", type=int, default=None, help="CPUs this node offers (default: Ray's count)")
    nd.add_argument("--num-gpus", type=int, default=None, help="GPUs this node offers (default: Ray's count)")
    nd.add_argument("--node-ip-address", default="127.0.0.2",
                    help="this node's address (default 127.0.0.2: loopback, which Ray does not rewrite as it does 127.0.0.1)")
    sub.add_parser("tasks", help="list the task YAMLs")
    sub.add_parser("models", help="list the model specs")
    co = sub.add_parser("cost", help="will it fit? visual tokens, FLOPs, peak memory and prefill time of model specs "
                                     "at N frames on a GPU, from their full-size configs (no weights)")
    co.add_argument("--model", required=True, help="model specs, comma-separated (see `harness models`)")
    co.add_argument("--frames", required=True, help="frame counts, comma-separated, e.g. 1000,10000")
    co.add_argument("--gpu", default="a100-80gb", help="a100-40gb, a100-80gb, h100-80gb, … (default a100-80gb)")
    co.add_argument("--decode", default=None, metavar="HxW", help="decoded frame size (default: a 360x640 stream)")
    co.add_argument("--json", action="store_true", help="print a JSON list of rows")
    pr = sub.add_parser("prepare", help="download and unpack a benchmark from the Hugging Face hub")
    pr.add_argument("--task", required=True)
    pr.add_argument("--data-root", default=None, help="where to put it (default: the task's)")
    pr.add_argument("--repo", default=None, help="one of the task's accepted hub names (lmms-eval/… or lmms-lab/…)")
    v = sub.add_parser("verify", help="parse a benchmark's annotation file and count its videos")
    v.add_argument("--task", required=True)
    v.add_argument("--data-root", default=None, help="benchmark directory (default: the task's)")
    v.add_argument("--annotations", default=None, help="annotation file as published (parquet, json, jsonl)")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def cmd_prepare(args: argparse.Namespace) -> int:
    from harness.data.prepare import prepare
    from harness.data.tasks import get_task

    root = prepare(get_task(args.task), args.data_root, args.repo)
    print(f"{args.task}: ready under {root}; check it with `python -m harness verify --task {args.task} "
          f"--data-root {root}`")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from harness.data.prepare import verify
    from harness.data.tasks import get_task

    report = verify(get_task(args.task), args.data_root, args.annotations)
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(f"{report.task}: {report.rows} rows parsed, {report.scorable} with a gold answer, "
              f"{report.videos_present} videos present, {report.videos_missing} missing")
        if report.missing_examples:
            print(f"  missing e.g.: {', '.join(report.missing_examples)}")
    if report.published_rows is not None and report.rows != report.published_rows:
        print(f"warning: {report.task} as published has {report.published_rows} rows, this file {report.rows}; "
              f"another revision or a partial file", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from harness.results.rescore import rescore, score_predictions
    from harness.results.summary import render_markdown

    if args.command == "score":
        out, summary = score_predictions(args.task, args.predictions, annotations=args.annotations,
                                         data_root=args.data_root, out=args.out, extractor=args.extractor,
                                         model=args.name)
    else:
        out, summary = rescore(args.run_dir, args.extractor, args.out)
    print(render_markdown(summary))
    print(f"scored with {summary.config['extractor']}: {out}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.run.config import RunnerConfig
    from harness.sweep import inline_sweep, load_sweep, run_sweep

    if (args.file is None) == (args.task is None or args.model is None):
        raise ConfigError("sweep: give a sweep FILE, or --task and --model (with --grid) for an inline sweep")
    spec = load_sweep(args.file) if args.file else inline_sweep(args.task, args.model, args.grid, args.limit,
                                                               args.reference)
    done = run_sweep(spec, args.out, RunnerConfig(workers=args.workers), wandb=not args.no_wandb)
    print(done["report"].read_text().split("## plots")[0].rstrip())
    print(f"\nsweep: {done['sweep_dir']}  (comparison/compare.md, table.csv, paired.csv, {len(done['plots'])} plots)")
    if "wandb" in done:
        print(done["wandb"])
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    """`ray start --block` for one node: it runs until this command is stopped."""
    from harness.run.raycluster import node_args, run_node

    run_node(node_args(args.head, args.address, args.port, args.num_cpus, args.num_gpus, args.node_ip_address),
             args.node_ip_address)
    return 0


def cmd_tasks() -> int:
    from harness.data.tasks import discover, discover_suites, load_task_file

    registry = discover()
    for name in registry.names():
        spec = load_task_file(registry.get(name))
        print(f"{name:<24} v{spec.version}  {spec.description}")
    suites = discover_suites()
    for name in suites.names():
        suite = suites.get(name)
        print(f"{name:<24} suite  {suite.description} [{', '.join(suite.tasks)}]")
    return 0


def cmd_models() -> int:
    from harness.model.budget import budget
    from harness.model.specs import MODELS

    for name in MODELS.names():
        spec = MODELS.get(name)
        if spec.name != name:  # an alias: MODELS.get returns the spec it names
            print(f"{name:<28} alias of {spec.name}")
            continue
        tokens = budget(spec)
        print(f"{name:<28} hook: {spec.hooks():<24} tokens: {str(tokens or 'per video'):<28} {spec.description}  "
              f"[{spec.backbone} × {spec.selector} × {spec.reducer}]")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    import json

    from harness.cost.estimate import estimate
    from harness.cost.gpus import MFU, gpu
    from harness.cost.workload import DEFAULT_DECODE
    from harness.model.specs import MODELS
    from harness.results.summary import markdown_table

    card = gpu(args.gpu)  # an unknown card fails before any spec is read
    frames = _counts(args.frames, "--frames")
    decode = tuple(_counts(args.decode.lower().replace("x", ","), "--decode")) if args.decode else DEFAULT_DECODE
    if len(decode) != 2:
        raise ConfigError(f"--decode {args.decode!r}: expected HEIGHTxWIDTH, e.g. 360x640")
    specs = [MODELS.get(name.strip()) for name in args.model.split(",")]
    costs = [estimate(spec, n, card.name, decode) for spec in specs for n in frames]  # type: ignore[arg-type]
    if args.json:
        print(json.dumps([c.row() for c in costs], indent=1))
        return 0
    print(markdown_table([c.table_row() for c in costs]))
    print(f"\n{card.name}: {card.memory_gb:g} GB; TFLOPs as torch.utils.flop_counter counts them; memory in GB (GiB) "
          "at the peak (frames: host buffers, not on the card); est. prefill s = (vision + projector + prefill FLOPs) "
          f"/ ({card.bf16_tflops:g} TFLOPS dense BF16 × {MFU} assumed MFU); frames decoded at {decode[0]}×{decode[1]}.")
    for spec in specs:
        mine = [c for c in costs if c.model == spec.name]
        print(f"{spec.name}: {mine[0].reading}; peak at " + ", ".join(f"{c.frames:,}: {c.peak_stage}" for c in mine)
              + "".join(f"; {note}" for note in mine[0].notes))
    return 0


def _counts(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated whole numbers, e.g. 1000,10000") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{flag} {text!r}: expected whole numbers >= 1")
    return values


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.evaluate import EvalRequest, evaluate, resolve, resolve_all, run_suite, suite_name
    from harness.results.summary import render_markdown
    from harness.run.config import RunnerConfig
    from harness.run.interrupt import stop_on_signals
    request = EvalRequest(
        task=args.task, model=args.model, limit=args.limit, prompt=args.prompt, extractor=args.extractor,
        video_backend=args.video_backend, overrides=tuple(args.overrides),
        data_root=args.data_root,
        out=args.out, wandb=not args.no_wandb, group=args.group, resume=args.resume,
        runner=RunnerConfig(workers=args.workers, threads_per_worker=args.threads_per_worker, device=args.device,
                            ray_address=args.ray_address, decode_workers=args.decode_workers,
                            sample_timeout_s=args.sample_timeout, max_retries=args.max_retries,
                            placement=args.placement, max_in_flight=args.max_in_flight,
                            **({} if args.model_queue is None else {"model_queue": args.model_queue})),
    )
    if suite_name(args.task) is not None:  # several tasks: one queue, a run directory each, the suite table
        runs = resolve_all(request)  # all checked before Ray or a directory exists
        with stop_on_signals():
            suite = run_suite(request, runs)
        print()
        print(suite.table.read_text())
        for outcome in suite.outcomes:
            print(f"{outcome.summary.config['task']}: {outcome.run_dir}")
        print(f"suite: {suite.suite_dir}")
        return 0
    resolved = resolve(request)  # every name, argument, hook and the data checked: before Ray or a run directory
    with stop_on_signals():  # SIGINT and SIGTERM close the journal; `main` prints how to resume
        outcome = evaluate(request, resolved)
    print()
    print(render_markdown(outcome.summary))
    print(f"results: {outcome.run_dir}")
    if outcome.wandb_dir:
        print(f"W&B run (offline): {outcome.wandb_dir}  — upload with `wandb sync {outcome.wandb_dir}`")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import time

    from harness.core.paths import results_dir
    from harness.results.compare import compare, publish_wandb_report

    out = args.out or results_dir() / f"compare__{time.strftime('%Y%m%d-%H%M%S')}"
    done = compare(args.run_dirs, out, args.title, args.reference)
    print(done["report"].read_text().split("## plots")[0].rstrip())
    print(f"\ncomparison: {out}  (compare.md, compare.csv, {len(done['plots'])} plots)")
    print(publish_wandb_report(done["runs"], done["title"], done["report"]))
    return 0


def _stopped(exc: Interrupted, argv: list[str], resuming: bool) -> str:
    """What a stopped `eval` prints: the signal, and the exact command that finishes the run."""
    name = signal.Signals(exc.signum).name
    if exc.run_dir is None:
        return f"{name}: stopped"
    command = argv if resuming else [*argv, "--resume", str(exc.run_dir)]
    return (f"{name}: stopped; finished samples are in {exc.run_dir / 'samples.jsonl'}. Finish the run with\n"
            f"  {shlex.join([sys.executable, '-m', 'harness', *command])}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        if args.command == "tasks":
            return cmd_tasks()
        if args.command == "models":
            return cmd_models()
        if args.command == "cost":
            return cmd_cost(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "prepare":
            return cmd_prepare(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command in ("score", "rescore"):
            return cmd_score(args)
        if args.command == "sweep":
            return cmd_sweep(args)
        if args.command == "node":
            return cmd_node(args)
        return cmd_eval(args)
    except (UnknownNameError, ConfigError, CompareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Interrupted as exc:  # `eval` stopped by SIGINT or SIGTERM, its journal closed
        print(_stopped(exc, argv, resuming=args.resume is not None), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
