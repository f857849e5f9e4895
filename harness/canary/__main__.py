"""`python -m harness.canary train|train-clip --out DIR [--steps-scale F]`: run a canary recipe into DIR."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.canary.clip import ClipRecipe
from harness.canary.recipe import Recipe
from harness.canary.train import train, train_encoder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.canary", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train the canary LLaVA-OV and write its checkpoint + manifest")
    run.add_argument("--out", type=Path, required=True, help="checkpoint directory")
    run.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count and bank size")
    run.add_argument("--heldout-frames", default="8,64", help="comma-separated clip lengths for the held-out check")
    clip = commands.add_parser("train-clip", help="train the canary CLIP (the keyframe selectors' encoder)")
    clip.add_argument("--out", type=Path, required=True, help="checkpoint directory")
    clip.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count and bank size")
    args = parser.parse_args(argv)
    if args.command == "train-clip":
        manifest = train_encoder(args.out, ClipRecipe().scaled(args.steps_scale))
    else:
        frames = tuple(int(x) for x in args.heldout_frames.split(","))
        manifest = train(args.out, Recipe().scaled(args.steps_scale), frames)
    print(json.dumps({k: manifest[k] for k in ("wall_time_s", "heldout")}, indent=2))


if __name__ == "__main__":
    main()
