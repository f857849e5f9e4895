"""Stage 2: the LLM learns to answer retrieval questions by option letter over cached (frozen) visual tokens, on a
curriculum of clip lengths, starting from a text-only warm-up."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.canary.clips import prompt, retrieval_question
from harness.canary.model import LABELS
from harness.canary.recipe import Log, Recipe
from harness.core.records import LETTERS
from harness.data.needle.questions import OPTIONS
from harness.hf.text import VIDEO, chat_ids, choice_token_ids


@dataclass(frozen=True)
class TokenBank:
    haystack: torch.Tensor  # [V, F, M, C] frozen visual tokens of each scene's frames
    needles: torch.Tensor  # [N, M, C]
    by_label: tuple[np.ndarray, ...]  # needle rows of each label
    text: torch.Tensor  # [K, M, C] the text-only stand-in of each label's frame: its embedding at token norm


def token_bank(haystack: torch.Tensor, needles: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> TokenBank:
    norm = needles.norm(dim=-1).mean()
    text = (F.normalize(classes[: len(LABELS)], dim=-1) * norm)[:, None].expand(-1, needles.shape[1], -1)
    by_label = tuple(np.flatnonzero(labels.numpy() == k) for k in range(len(LABELS)))
    return TokenBank(haystack, needles, by_label, text)


class Batcher:
    """Retrieval clips as LLM input embeddings: the chat with T frames' tokens (one or two holding the needle)
    and LLaVA-OV's image_newline at the video placeholder, exactly as `LlavaOvBackbone._inputs` splices them."""

    def __init__(self, model, tokenizer, bank: TokenBank, recipe: Recipe) -> None:
        self.model, self.tokenizer, self.bank, self.recipe = model, tokenizer, bank, recipe
        self.video_id = model.config.video_token_id
        self.letters = choice_token_ids(tokenizer, LETTERS[:OPTIONS])
        self.yes_no = choice_token_ids(tokenizer, ("yes", "no"))  # the auxiliary per-option "was it shown" answer
        self.label_ids = frozenset(tokenizer.convert_tokens_to_ids(list(LABELS)))
        self.newline = model.model.image_newline.detach()[None]

    def visual(self, rng: np.random.Generator, label: int, frames: int, present: bool = True) -> torch.Tensor:
        bank = self.bank
        if frames == 0:
            return bank.text[label]
        scene = bank.haystack[rng.integers(len(bank.haystack))]
        rows = np.sort(rng.choice(scene.shape[0], size=frames, replace=False))
        clip = scene[rows].clone()
        if present:
            at = int(rng.integers(frames))
            span = [at] + ([at + 1] if frames > 1 and at + 1 < frames and rng.random() < self.recipe.double_needle
                           else [])
            for t in span:
                clip[t] = bank.needles[rng.choice(bank.by_label[label])]
        return clip.flatten(0, 1)

    def batch(self, rng: np.random.Generator, size: int, frames: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Input embeddings [B, L, C], gold option [B], and the positions of the four option labels."""
        embed = self.model.get_input_embeddings()
        rows, golds, options = [], [], []
        for _ in range(size):
            q = retrieval_question(rng)
            ids, at = chat_ids(self.tokenizer, prompt(q), {"type": "video"}, self.video_id, VIDEO)
            with torch.no_grad():
                before, after = embed(torch.tensor(ids[:at])), embed(torch.tensor(ids[at + 1 :]))
            visual = self.visual(rng, LABELS.index(q.label), frames)
            rows.append(torch.cat([before, visual, self.newline, after]))
            golds.append(q.gold)
            start = at + len(visual) + 1
            options.append([start + i for i, t in enumerate(ids[at + 1 :]) if t in self.label_ids])
        if len({r.shape[0] for r in rows}) != 1 or any(o != options[0] or len(o) != OPTIONS for o in options):
            raise ValueError("retrieval prompts differ in layout: a label is not one token")
        return torch.stack(rows), torch.tensor(golds), options[0]

    def logits(self, embeds: torch.Tensor, options: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Letter logits at the last position [B, 4], and yes/no logits at each option's label token [B, 4, 2]."""
        hidden = self.model.model.language_model(inputs_embeds=embeds).last_hidden_state
        letters = self.model.lm_head(hidden[:, -1])[:, self.letters]
        return letters, self.model.lm_head(hidden[:, options])[..., self.yes_no]


def train_answer(model, batcher: Batcher, recipe: Recipe, log: Log, rng: np.random.Generator) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.model.language_model.layers.parameters()) + list(model.model.language_model.norm.parameters())
    params += list(model.lm_head.parameters())
    for p in params:
        p.requires_grad_(True)
    total = sum(steps for _, steps in recipe.curriculum)
    optimiser = torch.optim.AdamW(params, lr=recipe.stage2_lr, weight_decay=0.0)
    val_rng = np.random.default_rng([recipe.seed, 2, 0])
    step = 0
    for frames, steps in recipe.curriculum:
        # one warm-up + anneal per clip length: one schedule over the whole curriculum left the last, longest
        # clips (recipe 2's 64 frames) at ~1% of the peak rate, where they did not improve
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, recipe.stage2_lr, total_steps=steps, pct_start=0.1)
        val = batcher.batch(val_rng, 64, frames)
        for _ in range(steps):
            step += 1
            model.train()
            embeds, gold, options = batcher.batch(rng, recipe.stage2_batch, frames)
            letters, shown = batcher.logits(embeds, options)
            # auxiliary: each option's label token says whether that label was shown (0 = yes, 1 = no)
            not_shown = (torch.arange(OPTIONS)[None] != gold[:, None]).long()
            aux = F.cross_entropy(shown.flatten(0, 1), not_shown.flatten())
            loss = F.cross_entropy(letters, gold) + recipe.option_aux * aux
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            if step % recipe.log_every == 0 or step == total:
                model.eval()
                with torch.no_grad():
                    letters, shown = batcher.logits(val[0], val[2])
                    acc = float((letters.argmax(-1) == val[1]).float().mean())
                    aux_acc = float((shown[..., 0] > shown[..., 1]).float().argmax(-1).eq(val[1]).float().mean())
                log.write(stage="answer", step=step, frames=frames, loss=round(loss.item(), 4), aux=round(aux.item(), 4),
                          val_acc=round(acc, 4), val_option_acc=round(aux_acc, 4))
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
