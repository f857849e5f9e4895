"""Pieces every transformers backbone shares: checkpoint building and caching, loading by hub id or
directory (offline-aware), the offline BPE tokenizer for tiny checkpoints, the chat-template splice and
the timed greedy loop.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from harness.core.config import ConfigError
from harness.core.records import Prompt

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[name]


def resolve_device(device: str, num_threads: int | None) -> torch.device:
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available on this machine")
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    return target


def save_atomically(directory: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(staging)` in a temporary sibling and rename it to `directory`, which must not exist yet.

    So `directory` is either absent or complete, never half-written.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"checkpoint directory already exists: {directory}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        build(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            staging.rename(directory)
        except OSError as error:  # another builder renamed its copy first
            raise FileExistsError(f"checkpoint directory appeared while building: {directory}") from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def ensure_built(directory: Path, build: Callable[[Path], object]) -> Path:
    """Build `directory` once; concurrent first users wait on a file lock instead of building twice."""
    if directory.is_dir():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not directory.is_dir():
            build(directory)
    return directory


def train_bpe_tokenizer(
    lines: Iterable[str],
    special_tokens: list[str],
    *,
    eos: str,
    pad: str,
    chat_template: str,
    vocab_size: int = 1024,
    extra_special_tokens: dict[str, str] | None = None,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE (Qwen2's scheme) trained offline on `lines`, with the model's special tokens."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        show_progress=False,
    )
    backend.train_from_iterator(list(lines), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=eos,
        pad_token=pad,
        extra_special_tokens=extra_special_tokens or {},
        chat_template=chat_template,
        model_max_length=32768,
    )


def resolve_checkpoint(source: str) -> str:
    """A local directory, or a hub id; offline, the hub id must already be in the local HF cache.

    Raises ConfigError with one line naming what to do, so a run fails before any worker starts.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"checkpoint directory {path} has no config.json (expected a save_pretrained dir)")
        return str(path)
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise ConfigError(f"checkpoint {source!r}: no such directory, and not a hub id of the form org/name")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        return source
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(source, local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError and friends: not cached
        raise ConfigError(
            f"checkpoint {source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
            f"downloading it ({type(exc).__name__}); fetch it into the cache once with `hf download {source}` "
            f"(or set HF_HOME to a cache that holds it)"
        ) from None


def check_checkpoint(*, checkpoint: str | None = None, **_: Any) -> None:
    """`preflight` of the transformers backbones: a `checkpoint` must resolve offline (see resolve_checkpoint)."""
    if checkpoint is not None:
        resolve_checkpoint(str(checkpoint))


def load_pretrained(
    model_cls: Any,
    processor_cls: Any,
    source: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str = "sdpa",
    num_threads: int | None = None,
) -> tuple[Any, Any]:
    """`from_pretrained` for the model and its processor, with dtype / device / attention options."""
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"unknown attn_implementation {attn_implementation!r}; valid: {ATTN_IMPLEMENTATIONS}")
    torch_dtype = resolve_dtype(dtype)
    target = resolve_device(device, num_threads)
    where = resolve_checkpoint(source)
    model = model_cls.from_pretrained(where, dtype=torch_dtype, attn_implementation=attn_implementation)
    processor = processor_cls.from_pretrained(where)
    return model.to(target).eval(), processor


def chat_text(tokenizer: Any, prompt: Prompt, media: dict[str, Any]) -> str:
    """The chat as the model's template renders it (media part before the user text), assistant prefix included."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [media, {"type": "text", "text": prompt.user}]}]
    if prompt.system:
        messages.insert(0, {"role": "system", "content": prompt.system})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prompt.assistant_prefix


def chat_ids(tokenizer: Any, prompt: Prompt, media: dict[str, Any], token_id: int, token: str) -> tuple[list[int], int]:
    """Token ids of the chat (`chat_text`), and where its single placeholder sits."""
    ids = tokenizer(chat_text(tokenizer, prompt, media), add_special_tokens=False)["input_ids"]
    if (found := ids.count(token_id)) != 1:
        raise ValueError(f"the prompt must hold exactly one {token} placeholder, found {found}")
    return ids, ids.index(token_id)


def chatml_template(image: str, video: str, default_system: str) -> str:
    """Qwen2's ChatML as a Jinja chat template: a default system turn when none is given; typed content renders
    each visual item as `image` / `video` (the model's placeholder text) followed by the text parts."""
    return (
        "{% for message in messages %}"
        "{% if loop.first and message['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}"
        "{% endif %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{{{{ '{image}' }}}}"
        f"{{% elif part['type'] == 'video' %}}{{{{ '{video}' }}}}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        "{{ '<|im_end|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


def stop_ids(model: Any) -> frozenset[int]:
    eos = model.generation_config.eos_token_id
    return frozenset(eos if isinstance(eos, list) else [eos])


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]
    prefill_s: float
    decode_s: float


def choice_token_ids(tokenizer: Any, choices: tuple[str, ...]) -> list[int]:
    """The first token of each choice string; they must differ, or the choice would be ambiguous."""
    ids = [tokenizer(choice, add_special_tokens=False)["input_ids"][0] for choice in choices]
    if len(set(ids)) != len(ids):
        raise ValueError(f"choices {choices} do not start with distinct tokens ({ids})")
    return ids


def greedy(
    prefill: Callable[[], tuple[torch.Tensor, Any]],
    step: Callable[[int, int, Any], tuple[torch.Tensor, Any]],
    stops: frozenset[int],
    max_new_tokens: int,
    start: float,
    choices: list[int] | None = None,
) -> Decoded:
    """Greedy decoding with an explicit KV cache: `prefill()` once, then `step(token, i, cache)` per new token.

    Both callables return (last-position logits [V], cache). `start` is when the caller began preparing the
    prompt, so prefill time includes building the embeddings. With `choices` (token ids) the answer is the single
    highest-scoring of those tokens.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    with torch.inference_mode():
        logits, cache = prefill()
        if choices:
            best = choices[int(logits[torch.tensor(choices, device=logits.device)].argmax())]
            return Decoded([best], time.perf_counter() - start, 0.0)
        generated = [int(logits.argmax())]  # int() syncs, so the timing is real on GPU too
        prefill_done = time.perf_counter()
        while len(generated) < max_new_tokens and generated[-1] not in stops:
            logits, cache = step(generated[-1], len(generated) - 1, cache)
            generated.append(int(logits.argmax()))
    end = time.perf_counter()
    return Decoded(generated, prefill_done - start, end - prefill_done)


# In-LLM pruning (FastV, arXiv 2403.06764) on any decoder whose layers take (hidden, mask, position_embeddings,
# cache) and whose rotary embedding maps positions to (cos, sin) — Qwen2 ([1, n] positions) and Qwen2.5-VL's
# M-RoPE ([3, 1, n]) alike. Kept tokens keep their original positions.


def causal_mask(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive causal mask [1, 1, n, n]; explicit so eager and SDPA attention agree."""
    blocked = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
    return torch.zeros(n, n, dtype=dtype, device=device).masked_fill(blocked, torch.finfo(dtype).min)[None, None]


def llm_layers(
    model: Any, hidden: torch.Tensor, positions: torch.Tensor, cache: Any, mask: torch.Tensor | None,
    start: int = 0, stop: int | None = None,
) -> torch.Tensor:
    """Decoder layers [start, stop) of `model`'s LLM on `hidden`; with stop=None also the final norm and the LM head
    (last position only)."""
    lm = model.model.language_model
    embeddings = lm.rotary_emb(hidden, positions)
    for layer in lm.layers[start:stop]:
        hidden = layer(hidden, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True, position_embeddings=embeddings)
    if stop is not None:
        return hidden
    return model.lm_head(lm.norm(hidden[:, -1:]))  # only the last position is ever read: [1, 1, V]


def last_token_attention(model: Any, layer_index: int, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """softmax(q_last · Kᵀ) of LLM layer `layer_index` on its input `hidden`, averaged over heads: [n].

    Recomputed for the last query only (eager math for this one layer), since SDPA returns no weights.
    """
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb, repeat_kv

    lm = model.model.language_model
    layer = lm.layers[layer_index]
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    q = attn.q_proj(x[:, -1:]).view(1, 1, -1, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(1, x.shape[1], -1, attn.head_dim).transpose(1, 2)
    cos, sin = lm.rotary_emb(hidden, positions)
    q = apply_rotary_pos_emb(q, q, cos[:, -1:], sin[:, -1:])[0]
    k = apply_rotary_pos_emb(k, k, cos, sin)[0]
    k = repeat_kv(k, attn.num_key_value_groups)
    weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scaling, dim=-1)  # [1, H, 1, n]
    return weights.mean(dim=1)[0, 0]


def prefill_pruned(
    model: Any, embeds: torch.Tensor, positions: torch.Tensor, visual: range, layer: int, keep_ratio: float,
) -> tuple[torch.Tensor, Any, list[int], torch.Tensor]:
    """FastV prefill: layers < K see every token; from layer K on only the top ceil(keep_ratio·N) visual tokens
    by the last prompt token's attention at layer K - 1 (mean over heads) remain.

    Returns (last-position logits [V], cache, kept visual indices into the sequence, kept positions).
    """
    import math

    from transformers.cache_utils import DynamicCache

    lm = model.model.language_model
    if layer >= len(lm.layers):
        raise ValueError(f"FastV layer K={layer} must be below the LLM's {len(lm.layers)} layers")
    n = embeds.shape[1]
    dtype, device = embeds.dtype, embeds.device
    cache = DynamicCache(config=lm.config)
    hidden = llm_layers(model, embeds, positions, cache, causal_mask(n, dtype, device), stop=layer - 1)
    scores = last_token_attention(model, layer - 1, hidden, positions)[visual.start : visual.stop]
    hidden = llm_layers(model, hidden, positions, cache, causal_mask(n, dtype, device), start=layer - 1, stop=layer)
    n_keep = min(len(visual), math.ceil(keep_ratio * len(visual)))
    kept = sorted(visual.start + int(i) for i in torch.topk(scores, n_keep).indices)
    rows = torch.tensor([*range(visual.start), *kept, *range(visual.stop, n)], device=device)
    hidden, positions = hidden[:, rows], positions[..., rows]
    logits = llm_layers(model, hidden, positions, cache, causal_mask(len(rows), dtype, device), start=layer)[0, -1]
    return logits, cache, kept, positions
