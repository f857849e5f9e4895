"""`estimate(spec, frames, gpu)`: will this spec fit a card at N frames, and how long will the prefill take?

A spec is put at N frames (harness.cost.workload: what N means per selector), its visual tokens counted by its own
methods, and its full-size architecture (harness.cost.architectures: the published config's numbers; a tiny
checkpoint's own config.json) costed as the harness's code runs it (harness.cost.pipeline): FLOPs by part as
torch.utils.flop_counter counts them, and the peak of memory over the sample's stages at the spec's dtype and
attention implementation. On a GPU the decoded frames and the image processor's tensors stay in host memory
(`frames_bytes`, the host's own peak) and the peak is the device's; on the CPU (gpu=None) everything is one memory.
The prefill time is FLOPs / (peak × harness.cost.gpus.MFU): an estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.backbones import BACKBONES
from harness.backbones.base import bind_arguments
from harness.cost import weights
from harness.cost.architectures import architecture_of
from harness.cost.gpus import MFU
from harness.cost.gpus import gpu as find_gpu
from harness.cost.pipeline import run
from harness.cost.workload import DEFAULT_DECODE, workload
from harness.hf.loading import DTYPES
from harness.model.specs import ModelSpec

DEFAULT_TEXT_TOKENS = 128  # prompt tokens besides the video: a chat template and a multiple-choice question
GB = 2**30  # GiB, as the cards' capacities


@dataclass(frozen=True)
class Cost:
    model: str
    frames: int  # N
    reading: str  # what N means for this spec
    gpu: str | None  # None: the CPU
    dtype: str
    attention: str
    visual_tokens: int  # entering the LLM, separators included
    visual_tokens_in_llm: tuple[int, ...]  # after each in-LLM pruning stage
    sequence: int  # visual + prompt tokens
    prefill_tokens: int  # tokens the prefill reads (ViLAMP cuts the sequence at its max length)
    context_window: int
    streamed: bool
    vision_flops: float
    projector_flops: float
    prefill_flops: float
    per_token_flops: float
    selector_flops: float  # a selector's own encoder on the CPU (not in the prefill time)
    weights_bytes: float
    activation_bytes: float  # at the peak: every tensor alive but the weights and the KV cache
    kv_bytes: float  # the KV cache at the peak
    frames_bytes: float  # host frame buffers: at the peak on the CPU, the host's own peak on a GPU
    peak_bytes: float
    peak_stage: str
    capacity_gb: float | None
    notes: tuple[str, ...] = ()  # what this row leaves out or approximates (beyond the README's common list)

    @property
    def exceeds_context(self) -> bool:
        return self.sequence > self.context_window

    @property
    def context(self) -> str:
        if not self.exceeds_context:
            return "ok"
        return f"CUT at {self.context_window}" if self.prefill_tokens < self.sequence else \
            f"EXCEEDS {self.context_window}"

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB

    @property
    def fits(self) -> bool | None:
        return None if self.capacity_gb is None else self.peak_gb <= self.capacity_gb

    @property
    def headroom_gb(self) -> float | None:
        return None if self.capacity_gb is None else self.capacity_gb - self.peak_gb

    @property
    def prefill_s(self) -> float | None:
        """Encoding + prefill on the device at MFU of the card's dense BF16 peak."""
        if self.gpu is None:
            return None
        return find_gpu(self.gpu).seconds(self.vision_flops + self.projector_flops + self.prefill_flops)

    def row(self) -> dict:
        """The JSON row: every field, the derived ones included."""
        out = asdict(self)
        out.update(visual_tokens_in_llm=list(self.visual_tokens_in_llm), notes=list(self.notes),
                   peak_gb=round(self.peak_gb, 3), fits=self.fits, headroom_gb=_round(self.headroom_gb),
                   prefill_s=_round(self.prefill_s), exceeds_context=self.exceeds_context, mfu=MFU)
        return out

    def table_row(self) -> dict:
        """The printed table's columns (TFLOPs, GB)."""
        after = f" → {self.visual_tokens_in_llm[-1]:,}" if self.visual_tokens_in_llm else ""
        fits = "—" if self.fits is None else ("yes" if self.fits else "NO")
        return {"model": self.model, "frames": f"{self.frames:,}", "visual tokens": f"{self.visual_tokens:,}{after}",
                "context": self.context, "TFLOPs vision": _t(self.vision_flops),
                "projector": _t(self.projector_flops), "prefill": _t(self.prefill_flops),
                "per token": _t(self.per_token_flops), "GB weights": _g(self.weights_bytes),
                "activations": _g(self.activation_bytes), "KV": _g(self.kv_bytes),
                "frames (host)": _g(self.frames_bytes), "peak": _g(self.peak_bytes), "fits": fits,
                "headroom GB": "—" if self.headroom_gb is None else f"{self.headroom_gb:.1f}",
                "est. prefill s": "—" if self.prefill_s is None else f"{self.prefill_s:,.1f}"}


def estimate(spec: ModelSpec, frames: int, gpu: str | None = "a100-80gb", decode: tuple[int, int] = DEFAULT_DECODE,
             text_tokens: int = DEFAULT_TEXT_TOKENS) -> Cost:
    """The cost of `spec` at `frames` frames on card `gpu` (None: on the CPU), frames decoded at `decode` =
    (height, width), with `text_tokens` prompt tokens besides the video."""
    card = None if gpu is None else find_gpu(gpu)
    arch = architecture_of(spec)
    cls = BACKBONES.get(spec.backbone.name)
    args = bind_arguments(spec.backbone.name, cls.load, spec.backbone.args)
    dtype, attention = args.get("dtype", "float32"), args.get("attn_implementation", "sdpa")
    b = DTYPES[dtype].itemsize
    vilamp = spec.backbone.name.startswith("vilamp")
    w = workload(spec, frames, arch, decode)
    r = run(w, arch, b, attention == "eager", text_tokens, vilamp)
    weight_bytes = weights.parameters(arch, vilamp) * b
    if card is None:  # one memory: the host buffers count with the rest
        top = max(r.phases, key=lambda p: p.device + p.kv + p.host)
        frame_bytes, peak = top.host, weight_bytes + top.device + top.kv + top.host
    else:
        top = max(r.phases, key=lambda p: p.device + p.kv)
        frame_bytes, peak = max(p.host for p in r.phases), weight_bytes + top.device + top.kv
    return Cost(spec.name, frames, w.reading, gpu, dtype, attention, w.visual_tokens, w.in_llm,
                w.visual_tokens + text_tokens, r.sequence, arch.llm.context_window, w.streamed, r.vision, r.projector,
                r.prefill, r.per_token, r.selector, weight_bytes, top.device, top.kv, frame_bytes, peak, top.name,
                None if card is None else card.memory_gb, r.notes)


def _t(flops: float) -> str:
    return f"{flops / 1e12:,.3g}" if flops < 1e15 else f"{flops / 1e12:,.0f}"


def _g(size: float) -> str:
    return f"{size / GB:,.2f}" if size < 100 * GB else f"{size / GB:,.0f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)

