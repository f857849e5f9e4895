"""The whole recipes: seed and threads, stage 1 (vision), stage 2 (answer), held-out evaluation, and the checkpoint
written with `save_pretrained` (model + processor) plus `manifest.json`; the same for the canary CLIP."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers

from harness.canary.answer import Batcher, token_bank, train_answer
from harness.canary.clip import CLIP_RECIPE_VERSION, ClipRecipe, build_canary_clip, clip_bank, fit, heldout
from harness.canary.heldout import evaluate
from harness.canary.model import build_canary_model, label_ids
from harness.canary.recipe import RECIPE_VERSION, Log, Recipe
from harness.canary.vision import build_bank, cache_tokens, train_vision
from harness.data.needle.config import NeedleConfig
from harness.hf.checkpoints import save_all

MANIFEST = "manifest.json"
LEARNING_CURVE = "learning_curve.jsonl"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file `save_pretrained` wrote (everything but the manifest and the learning curve)."""
    return {p.name: sha256(p) for p in sorted(Path(directory).iterdir())
            if p.is_file() and p.name not in (MANIFEST, LEARNING_CURVE)}


def _fresh(out: Path) -> Path:
    """`out`, empty: a previous canary run there (finished: a manifest; interrupted: a learning curve) is replaced,
    anything else refused."""
    if out.exists() and any(out.iterdir()):
        if not ((out / MANIFEST).is_file() or (out / LEARNING_CURVE).is_file()):
            raise FileExistsError(f"{out} is not empty and holds no canary {MANIFEST} or {LEARNING_CURVE}; "
                                  "refusing to overwrite it: pass an empty or new --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def train(out: Path, recipe: Recipe = Recipe(), heldout_frames: tuple[int, ...] = (8,)) -> dict:
    """Run the recipe into `out` (see the module docstring); returns the manifest."""
    out = _fresh(Path(out))
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    rng = np.random.default_rng([recipe.seed, 0])
    log = Log(out / LEARNING_CURVE)
    model, processor = build_canary_model(recipe.seed, recipe.widths)
    classes = model.get_input_embeddings().weight[label_ids(processor.tokenizer)].detach().clone()
    bank = build_bank(recipe, processor, rng)
    timings = {"bank_s": round(log.elapsed(), 1)}
    log.write(stage="bank", haystack=list(bank.haystack.shape[:2]), needles=len(bank.needles))
    train_vision(model, classes, bank, recipe, log, gen)
    timings["vision_s"] = round(log.elapsed() - sum(timings.values()), 1)
    hay = cache_tokens(model, bank.haystack.flatten(0, 1)).unflatten(0, bank.haystack.shape[:2])
    tokens = token_bank(hay, cache_tokens(model, bank.needles), bank.needle_labels, classes)
    train_answer(model, Batcher(model, processor.tokenizer, tokens, recipe), recipe, log,
                 np.random.default_rng([recipe.seed, 1]))
    timings["answer_s"] = round(log.elapsed() - sum(timings.values()), 1)
    results = evaluate(model, processor, classes, recipe, heldout_frames)
    timings["heldout_s"] = round(log.elapsed() - sum(timings.values()), 1)
    log.write(stage="heldout", **results)
    save_all(out, model, processor)
    steps = {"vision": recipe.stage1_steps, "answer": sum(s for _, s in recipe.curriculum)}
    return write_manifest(out, RECIPE_VERSION, recipe, steps, log, timings, results)


def train_encoder(out: Path, recipe: ClipRecipe = ClipRecipe()) -> dict:
    """The canary CLIP (harness/canary/clip.py) into `out`: checkpoint + manifest, as `train`."""
    out = _fresh(Path(out))
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    log = Log(out / LEARNING_CURVE)
    model, processor, tokenizer = build_canary_clip(recipe)
    bank = clip_bank(recipe, processor, np.random.default_rng([recipe.seed, 0]))
    timings = {"bank_s": round(log.elapsed(), 1)}
    fit(model, tokenizer, bank, recipe, log, np.random.default_rng([recipe.seed, 1]),
        torch.Generator().manual_seed(recipe.seed))
    timings["train_s"] = round(log.elapsed() - sum(timings.values()), 1)
    results = heldout(model, processor, tokenizer, recipe)
    timings["heldout_s"] = round(log.elapsed() - sum(timings.values()), 1)
    log.write(stage="heldout", **results)
    save_all(out, model, processor, tokenizer)
    return write_manifest(out, CLIP_RECIPE_VERSION, recipe, {"clip": recipe.steps}, log, timings, results)


def write_manifest(out: Path, version: int, recipe, steps: dict[str, int], log: Log, timings: dict[str, float],
                   heldout: dict[str, float]) -> dict:
    """`manifest.json` beside the checkpoint `save_pretrained` wrote into `out`; returns it."""
    manifest = {
        "recipe_version": version,
        "recipe": dataclasses.asdict(recipe),
        "seeds": {"train": recipe.seed, "heldout": recipe.heldout_seed, "needle_task": NeedleConfig().seed},
        "steps": steps,
        "wall_time_s": round(log.elapsed(), 1),
        "timings_s": timings,
        "heldout": heldout,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "machine": platform.machine()},
        "sha256": weight_hashes(out),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
