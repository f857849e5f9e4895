"""Stage 1: the frame bank, and the vision tower + projector trained to classify each frame's needle label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.canary.clips import MAX_TIME, haystack_video, needle_events, pixels, through_codec
from harness.canary.model import LABELS, frame_tokens
from harness.canary.recipe import Log, Recipe, min_bank_needles
from harness.data.needle.questions import CATEGORIES


@dataclass(frozen=True)
class Bank:
    # float16 (the processor's [-1, 1] values to 3 digits): 36,000 needle frames at 128 px are 3.5 GB, not 7.1
    haystack: torch.Tensor  # processed pixels [V, F, 3, S, S], each scene's frames in time order
    needles: torch.Tensor  # [N, 3, S, S]
    needle_labels: torch.Tensor  # [N] index into LABELS


def task_labels(n: int) -> np.ndarray:
    """`n` label indices in the proportions the task draws needles (questions._random_label: a uniform category,
    then a uniform label): each category a third, each of its labels equally often. Recipe 4 drew labels
    uniformly, so words (12 of 71 labels, a third of the questions) were 17% of the bank: 62% of held-out word
    needles recognised against 97% of shapes."""
    pools = [[LABELS.index(label) for label in pool] for pool in CATEGORIES.values()]
    cycle = [pool[i % len(pool)] for i in range(-(-n // len(pools))) for pool in pools]
    return np.asarray(cycle[:n])


def build_bank(recipe: Recipe, processor, rng: np.random.Generator) -> Bank:
    """Every frame through the task's codec (clips.through_codec); needles as 2-frame events in scene context."""
    least = min_bank_needles()
    if recipe.bank_needles < least:
        raise ValueError(f"bank_needles={recipe.bank_needles}: need at least {least} for every label in the task's "
                         "proportions")
    scenes = []
    for _ in range(recipe.bank_videos):
        times = np.sort(rng.choice(MAX_TIME, size=recipe.bank_frames, replace=False))
        scenes.append(pixels(processor, through_codec(haystack_video(rng, times))).half())
    labels = task_labels(recipe.bank_needles // 2)
    rng.shuffle(labels)
    needles = [pixels(processor, needle_events(rng, [LABELS[i] for i in labels[at : at + 256]])).half()
               for at in range(0, len(labels), 256)]
    return Bank(torch.stack(scenes), torch.cat(needles), torch.as_tensor(labels).repeat_interleave(2))


def class_logits(tokens: torch.Tensor, classes: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine × scale against the class embeddings [K, C]: per token [N, M, K] and per frame mean [N, K]."""
    keys = F.normalize(classes, dim=-1)
    return scale * F.normalize(tokens, dim=-1) @ keys.T, scale * F.normalize(tokens.mean(1), dim=-1) @ keys.T


def train_vision(model, classes: torch.Tensor, bank: Bank, recipe: Recipe, log: Log, gen: torch.Generator) -> None:
    """Vision tower + projector (+ image_newline untouched); the LLM and its embeddings are not trained here."""
    params = list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters())
    optimiser = torch.optim.AdamW(params, lr=recipe.stage1_lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, recipe.stage1_lr, total_steps=recipe.stage1_steps,
                                                   pct_start=0.05)
    haystack = bank.haystack.flatten(0, 1)
    none = len(LABELS)
    half = recipe.stage1_batch // 2
    model.train()
    for step in range(1, recipe.stage1_steps + 1):
        n = torch.randint(len(bank.needles), (half,), generator=gen)
        h = torch.randint(len(haystack), (recipe.stage1_batch - half,), generator=gen)
        batch = torch.cat([bank.needles[n], haystack[h]]).float()
        target = torch.cat([bank.needle_labels[n], torch.full((len(h),), none)])
        tokens = frame_tokens(model, batch)
        per_token, per_frame = class_logits(tokens, classes, recipe.stage1_scale)
        # alignment: every token points the way its label's text embedding does (what stage 2's matching reads)
        align = 1 - F.cosine_similarity(tokens, classes[target][:, None], dim=-1).mean()
        loss = F.cross_entropy(per_token.flatten(0, 1), target.repeat_interleave(per_token.shape[1])) + \
            F.cross_entropy(per_frame, target) + recipe.stage1_align * align
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % recipe.log_every == 0 or step == recipe.stage1_steps:
            hit = per_frame.argmax(-1) == target
            log.write(stage="vision", step=step, loss=round(loss.item(), 4), align=round(align.item(), 4),
                      needle_acc=round(float(hit[:half].float().mean()), 4),
                      haystack_acc=round(float(hit[half:].float().mean()), 4))
    model.eval()


@torch.no_grad()
def frame_accuracy(model, classes: torch.Tensor, frames: torch.Tensor, target: torch.Tensor, scale: float) -> float:
    _, per_frame = class_logits(frame_tokens(model, frames), classes, scale)
    return float((per_frame.argmax(-1) == target).float().mean())


@torch.no_grad()
def cache_tokens(model, frames: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Frozen visual tokens [N, M, C] of processed frames [N, 3, S, S]."""
    return torch.cat([frame_tokens(model, frames[i : i + chunk].float()) for i in range(0, len(frames), chunk)])
