"""The canary image–text encoder (`canary-clip`): the real transformers `CLIPModel` from a small config, trained so
that a query scores the frames holding its needle above haystack frames. That cosine is the relevance the keyframe
selectors (top-k, AKS, BOLT) and ViLAMP's DKS rank frames by (baselines/relevance.py), so on the needle task they
now choose by content, as they would with a real CLIP on real video.

Queries are the needle task's own questions (`harness.data.needle.questions.question`), in both of the selectors'
query modes, plus the bare label: a label or a question naming labels should find those labels' frames; a question
naming none ("Which of these appeared in the video?") should find any needle frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from baselines.relevance import query_text
from harness.canary.clips import MAX_TIME, haystack_video, needle_frame, with_needle
from harness.canary.model import LABELS, canary_tokenizer
from harness.canary.recipe import Log
from harness.core.records import Sample
from harness.data.needle.config import KINDS, NeedleConfig
from harness.data.needle.questions import OPTIONS, QuestionSpec, question
from harness.methods.encoders import channels_first, small_clip

CLIP_RECIPE_VERSION = 1  # bump when the recipe's output changes for the same arguments
ANY = frozenset(range(len(LABELS)))  # a query that names no label: every needle frame is relevant


@dataclass(frozen=True)
class ClipRecipe:
    seed: int = 13_113  # disjoint from the LLaVA-OV canary's and the needle tasks' seeds
    heldout_seed: int = 13_998
    threads: int = 2
    image_size: int = 128  # the needle task's frames, unscaled (as the LLaVA-OV canary sees them)
    patch_size: int = 16
    width: int = 64
    heads: int = 4
    bank_videos: int = 48
    bank_frames: int = 32
    bank_needles: int = 6_000
    steps: int = 1_500
    batch: int = 64  # frames per step, half needle frames
    queries: int = 32  # query texts per step, each scored against every frame of the step
    lr: float = 2e-3
    scale: float = 10.0  # cosine logit scale of the sigmoid loss (SigLIP's, arXiv 2303.15343, with a learned bias)
    log_every: int = 25
    heldout_clips: int = 32  # per query mode, 64-frame clips

    def scaled(self, factor: float) -> ClipRecipe:
        if factor == 1:
            return self
        return dataclasses.replace(self, steps=max(1, round(self.steps * factor)),
                                   bank_videos=max(2, round(self.bank_videos * factor)),
                                   bank_needles=max(72, round(self.bank_needles * factor)),
                                   heldout_clips=max(4, round(self.heldout_clips * factor)))


def build_canary_clip(recipe: ClipRecipe):
    """The untrained canary CLIP, its image processor and tokenizer (the canary's: each label one token)."""
    return small_clip(canary_tokenizer(), seed=recipe.seed, image_size=recipe.image_size,
                      patch_size=recipe.patch_size, width=recipe.width, heads=recipe.heads)


def needle_question(rng: np.random.Generator) -> tuple[Sample, frozenset[int]]:
    """One of the needle task's questions (a random kind, length and gold), and the labels it names (ANY when the
    question and its options name none: the retrieval and ordering question texts)."""
    kind = KINDS[rng.integers(len(KINDS))]
    length = int(rng.choice(NeedleConfig().lengths))
    spec = QuestionSpec(0, kind, length, 0, int(rng.integers(OPTIONS)), float(rng.uniform()))
    row, events = question(spec, NeedleConfig(), rng)
    sample = Sample(id="canary", task="needle", video="", question=row["question"], options=tuple(row["options"]),
                    answer=spec.gold)
    return sample, frozenset(LABELS.index(label) for label, _ in events)


def query(rng: np.random.Generator) -> tuple[str, frozenset[int]]:
    """A query text and the labels whose frames it should score highest."""
    mode = rng.integers(3)
    if mode == 0:
        label = int(rng.integers(len(LABELS)))
        return LABELS[label], frozenset({label})
    sample, shown = needle_question(rng)
    if mode == 1:
        named = shown if any(LABELS[k] in sample.question for k in shown) else ANY
        return query_text(sample, "question"), named
    named = frozenset(k for k, label in enumerate(LABELS) if any(label in o for o in sample.options))
    return query_text(sample, "question+options"), named or shown


def process(processor, frames: np.ndarray) -> torch.Tensor:
    """CLIP pixel values (float16, see vision.Bank) of uint8 frames [N, H, W, 3], 512 at a time."""
    return torch.cat([processor(images=channels_first(frames[i : i + 512]), return_tensors="pt")["pixel_values"].half()
                      for i in range(0, len(frames), 512)])


def clip_bank(recipe: ClipRecipe, processor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """Haystack frames [H, 3, S, S], needle frames [N, 3, S, S] and their labels [N]."""
    hay = np.concatenate([haystack_video(rng, np.sort(rng.choice(MAX_TIME, recipe.bank_frames, replace=False)))
                          for _ in range(recipe.bank_videos)])
    labels = np.resize(np.arange(len(LABELS)), recipe.bank_needles)
    rng.shuffle(labels)
    needles = np.stack([needle_frame(rng, LABELS[i]) for i in labels])
    return process(processor, hay), process(processor, needles), torch.as_tensor(labels)


def embed_texts(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    return model.get_text_features(input_ids=batch["input_ids"],
                                   attention_mask=batch["attention_mask"]).pooler_output


def fit(model, tokenizer, bank, recipe: ClipRecipe, log: Log, rng: np.random.Generator,
               gen: torch.Generator) -> None:
    hay, needles, labels = bank
    bias = torch.nn.Parameter(torch.tensor(-5.0))  # the sigmoid loss's bias: training only (selectors rank by cosine)
    params = [*model.parameters(), bias]
    optimiser = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, recipe.lr, total_steps=recipe.steps, pct_start=0.05)
    half = recipe.batch // 2
    model.train()
    for step in range(1, recipe.steps + 1):
        n = torch.randint(len(needles), (half,), generator=gen)
        h = torch.randint(len(hay), (recipe.batch - half,), generator=gen)
        frames = torch.cat([needles[n], hay[h]]).float()
        frame_labels = torch.cat([labels[n], torch.full((len(h),), -1)])
        texts, named = zip(*(query(rng) for _ in range(recipe.queries)))
        target = torch.tensor([[int(k) in q for k in frame_labels.tolist()] for q in named], dtype=torch.float32)
        images = F.normalize(model.get_image_features(pixel_values=frames).pooler_output, dim=-1)
        text = F.normalize(embed_texts(model, tokenizer, list(texts)), dim=-1)
        logits = recipe.scale * text @ images.T + bias
        loss = F.binary_cross_entropy_with_logits(logits, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % recipe.log_every == 0 or step == recipe.steps:
            log.write(stage="clip", step=step, loss=round(loss.item(), 4), auc=round(auc(logits, target), 4))
    model.eval()


def auc(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over rows of the chance that a relevant frame outscores an irrelevant one (rows with both kinds)."""
    values = []
    for s, t in zip(scores.detach(), target.bool()):
        if t.any() and (~t).any():
            values.append(float((s[t][:, None] > s[~t][None]).float().mean()))
    return float(np.mean(values)) if values else float("nan")


@torch.no_grad()
def heldout(model, processor, tokenizer, recipe: ClipRecipe, frames: int = 64) -> dict[str, float]:
    """On fresh 64-frame clips of one scene with the question's needles drawn over some frames: per query mode,
    the AUC of needle over haystack frames and how often a needle frame ranks first."""
    rng = np.random.default_rng([recipe.heldout_seed, 0])
    modes = ("label", "question", "question+options")
    aucs: dict[str, list[float]] = {mode: [] for mode in modes}
    firsts: dict[str, list[bool]] = {mode: [] for mode in modes}
    for _ in range(recipe.heldout_clips):
        sample, shown = needle_question(rng)
        video = haystack_video(rng, np.sort(rng.choice(MAX_TIME, frames, replace=False)))
        at = dict(zip(sorted(shown), rng.choice(frames, size=len(shown), replace=False).tolist()))
        for k, t in at.items():
            video = with_needle(rng, video, t, LABELS[k])  # over the clip's own frame, as the task draws it
        images = F.normalize(model.get_image_features(pixel_values=process(processor, video).float()).pooler_output,
                             dim=-1)
        for mode in modes:
            target = torch.zeros(frames, dtype=torch.bool)
            if mode == "label":  # one of the shown labels alone finds its own frame
                text, target[at[min(shown)]] = LABELS[min(shown)], True
            else:
                text, target[list(at.values())] = query_text(sample, mode), True
            scores = images @ F.normalize(embed_texts(model, tokenizer, [text]), dim=-1)[0]
            aucs[mode].append(auc(scores[None], target[None].float()))
            firsts[mode].append(bool(target[scores.argmax()]))
    return {**{f"auc_{m}": round(float(np.mean(aucs[m])), 4) for m in modes},
            **{f"first_{m}": round(float(np.mean(firsts[m])), 4) for m in modes}}
