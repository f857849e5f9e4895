"""`harness cost`: the table and the JSON rows, the issue's must-show claims (ViLAMP at 10,000 frames fits an A100-80GB,
uniform LLaVA-OV-7B at 10,000 does not and exceeds Qwen2-7B's 32,768 positions), one-line errors, and what N frames
means per selector kind, counted by the methods themselves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main
from harness.core.records import Frames
from harness.cost.architectures import architecture_of
from harness.cost.estimate import GB, estimate
from harness.cost.gpus import GPUS, MFU
from harness.cost.workload import qwen_grid, workload
from harness.model.budget import budget
from harness.model.specs import MODELS
from harness.model.video_model import VideoModel
from harness.vilamp import vilamp_visual_tokens

MUST_SHOW = ["cost", "--model", "vilamp,llava-ov-7b-uniform", "--frames", "1000,10000", "--gpu", "a100-80gb"]


def test_the_table_has_a_row_per_spec_and_frame_count(capsys):
    assert main(MUST_SHOW) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:4] == ["model", "frames", "visual tokens", "context"]
    for column in ("TFLOPs vision", "prefill", "per token", "GB weights", "activations", "KV", "peak", "fits",
                   "headroom GB", "est. prefill s"):
        assert column in header
    rows = {(r[0], r[1]): r for r in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:6])}
    fits, context = header.index("fits"), header.index("context")
    assert rows["vilamp", "10,000"][fits] == "yes" and rows["vilamp", "10,000"][context] == "ok"
    assert rows["llava-ov-7b-uniform", "10,000"][fits] == "NO"
    assert rows["llava-ov-7b-uniform", "10,000"][context] == "EXCEEDS 32768"
    assert rows["llava-ov-7b-uniform", "10,000"][header.index("visual tokens")] == "1,960,001"


def test_json_rows_carry_the_must_show_numbers(capsys):
    assert main([*MUST_SHOW, "--json"]) == 0
    rows = {(r["model"], r["frames"]): r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 4
    for row in rows.values():
        assert {"model", "frames", "visual_tokens", "peak_gb", "fits"} <= set(row)
    vilamp, uniform = rows["vilamp", 10_000], rows["llava-ov-7b-uniform", 10_000]
    assert vilamp["visual_tokens"] == vilamp_visual_tokens(10_000, 32, 196) == 16_241
    assert vilamp["fits"] is True and vilamp["peak_gb"] < 80 and vilamp["streamed"] is True
    assert uniform["visual_tokens"] == 10_000 * 196 + 1
    assert uniform["fits"] is False and uniform["peak_gb"] > 80 and uniform["exceeds_context"] is True
    # the weights alone are the same 7B LLM + SigLIP; the difference is the 2M-token prefill
    assert uniform["kv_bytes"] > 50 * GB > vilamp["kv_bytes"]


@pytest.mark.parametrize("args, fragment", [
    (["--model", "no-such-spec", "--frames", "10"], "valid models: "),
    (["--model", "vilamp", "--frames", "10", "--gpu", "a200"], "known: a100-40gb, a100-80gb"),
    (["--model", "vilamp", "--frames", "ten"], "--frames 'ten'"),
    (["--model", "vilamp", "--frames", "10", "--decode", "360"], "--decode '360'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragment):
    assert main(["cost", *args]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and fragment in errors[0], errors


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n.startswith("llava-ov-7b-")
                                  and budget(MODELS.get(n)) is not None])
def test_at_its_own_frame_count_a_spec_costs_the_budget_harness_models_prints(name):
    spec = MODELS.get(name)
    counted = budget(spec)
    w = workload(spec, counted.frames if spec.selector.name == "uniform" else 600, architecture_of(spec))
    assert (w.encoded, w.visual_tokens, w.in_llm) == (counted.frames, counted.entering, counted.in_llm)


def test_what_n_means_per_selector_kind():
    arch = architecture_of(MODELS.get("llava-ov-7b-uniform"))
    uniform = workload(MODELS.get("llava-ov-7b-uniform"), 500, arch)
    assert (uniform.candidates, uniform.encoded, uniform.visual_tokens) == (0, 500, 500 * 196 + 1)
    topk = workload(MODELS.get("llava-ov-7b-topk"), 5000, arch)
    assert (topk.candidates, topk.encoded, topk.selector_encoder) == (5000, 32, "clip-vit-b32")
    clips = workload(MODELS.get("llava-ov-7b-keyclips"), 5000, arch)
    assert (clips.encoded, clips.tokens_per_row, clips.visual_tokens) == (128, 49, 32 * 196 + 1)
    vilamp = workload(MODELS.get("vilamp"), 5000, architecture_of(MODELS.get("vilamp")))
    assert (vilamp.candidates, vilamp.encoded, vilamp.keyframes, vilamp.streamed) == (5000, 5000, 32, True)
    matched = workload(MODELS.get("llava-ov-7b-uniform-vilamp-budget"), 10_000, arch)
    assert abs(matched.visual_tokens - vilamp_visual_tokens(10_000, 32, 196)) <= 196 // 2


def test_qwen_tokens_per_frame_follow_the_backbones_own_grid():
    """The cost model's smart_resize for Qwen2.5-VL is the one encode_frames uses (tiny checkpoint, two sizes)."""
    spec = MODELS.get("qwen25vl-tiny-uniform")
    backbone, arch = VideoModel(spec).backbone, architecture_of(spec)
    for n, (h, w) in ((16, (96, 128)), (600, (200, 120))):
        frames = Frames(tuple(range(n)), tuple(map(float, range(n))), np.zeros((n, h, w, 3), np.uint8), "synthetic")
        assert qwen_grid(spec, arch, n, (h, w)) == backbone.native_grid(frames)


def test_cpu_costs_count_host_buffers_and_gpus_do_not():
    spec = MODELS.get("llava-ov-7b-uniform")
    on_cpu, on_gpu = estimate(spec, 64, None), estimate(spec, 64, "a100-80gb")
    assert on_cpu.fits is None and on_cpu.prefill_s is None
    assert on_cpu.peak_bytes >= on_gpu.peak_bytes and on_gpu.frames_bytes > 0
    assert on_gpu.prefill_s == pytest.approx((on_gpu.vision_flops + on_gpu.projector_flops + on_gpu.prefill_flops)
                                             / (GPUS["a100-80gb"].bf16_tflops * 1e12 * MFU))
    assert all(g.memory_gb > 0 and g.bf16_tflops > 0 and ("datasheet" in g.source or "whitepaper" in g.source)
               for g in GPUS.values())
