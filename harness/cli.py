"""Command line: `python -m harness {eval,tasks,models}`. Only this module turns errors into exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from harness.config import ConfigError
from harness.registry import UnknownNameError

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
    e = sub.add_parser("eval", help="evaluate one model spec on one task")
    e.add_argument("--task", default="needle", help="task name (see `harness tasks`)")
    e.add_argument("--model", default="tiny-uniform", help="model spec (see `harness models`)")
    e.add_argument("--limit", type=_positive, default=None, help="only the first N samples")
    e.add_argument("--workers", type=_positive, default=_env_int("WORKERS") or os.cpu_count() or 1,
                   help="model actors (default: number of cores)")
    e.add_argument("--threads-per-worker", type=_positive, default=1)
    e.add_argument("--prompt", default=None, help="prompt profile (default: the task's)")
    e.add_argument("--data-root", default=None, help="benchmark directory (default: the task's)")
    e.add_argument("--out", default=None, help="results root (default: results/)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--ray-address", default=None, help="join an existing Ray cluster (or set RAY_ADDRESS)")
    e.add_argument("--no-wandb", action="store_true", help="skip the W&B run")
    sub.add_parser("tasks", help="list the task YAMLs")
    sub.add_parser("models", help="list the model specs")
    return p


def cmd_tasks() -> int:
    from harness.tasks import discover, load_task_file

    registry = discover()
    for name in registry.names():
        spec = load_task_file(registry.get(name))
        print(f"{name:<24} v{spec.version}  {spec.description}")
    return 0


def cmd_models() -> int:
    from harness.specs import MODELS

    for name in MODELS.names():
        spec = MODELS.get(name)
        print(f"{name:<24} {spec.backbone} × {spec.selector} × {spec.reducer}  — {spec.description}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.evaluate import EvalRequest, evaluate
    from harness.report import render_markdown
    from harness.runner import RunnerConfig
    from harness.specs import MODELS
    from harness.tasks import discover

    discover().get(args.task)  # fail fast on unknown names, before anything starts
    MODELS.get(args.model)
    request = EvalRequest(
        task=args.task, model=args.model, limit=args.limit, prompt=args.prompt, data_root=args.data_root,
        out=args.out, wandb=not args.no_wandb,
        runner=RunnerConfig(workers=args.workers, threads_per_worker=args.threads_per_worker, device=args.device,
                            ray_address=args.ray_address),
    )
    outcome = evaluate(request)
    print()
    print(render_markdown(outcome.summary))
    print(f"results: {outcome.run_dir}")
    if outcome.wandb_dir:
        print(f"W&B run (offline): {outcome.wandb_dir}  — upload with `wandb sync {outcome.wandb_dir}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "tasks":
            return cmd_tasks()
        if args.command == "models":
            return cmd_models()
        return cmd_eval(args)
    except (UnknownNameError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished samples are in the run's samples.jsonl", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
