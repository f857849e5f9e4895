"""The cost model is calibrated, not guessed: on the tiny specs' real models (tiny-uniform; the reducers tiny-fastv,
whose prefill builds a causal mask, and tiny-visionzip, which runs the vision tower twice) its peak memory (resident
set above the process baseline, in a fresh process) and its FLOPs (torch.utils.flop_counter around encode + reduce +
generate) are within 10% of the measurement at two frame counts each (harness.cost.calibrate); its parameter counts
are the loaded tiny models' and the meta-device 7B models'; and its FLOPs formulas are FlopCounterMode's count on the
full-size LLaVA-OV-7B config built on the meta device."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.cost import flops
from harness.cost.architectures import architecture_of
from harness.cost.calibrate import CASES, calibrate
from harness.cost.meta import meta_backbone
from harness.cost.weights import parameters
from harness.model.specs import MODELS
from harness.model.video_model import VideoModel

TOLERANCE = 0.10


@pytest.fixture(scope="module")
def calibrations():
    return {(c.model, c.frames): c for c in calibrate(CASES)}


def test_each_case_is_measured_at_two_frame_counts_tens_to_hundreds_of_mb(calibrations):
    assert sorted(calibrations) == sorted((model, n) for model, counts in CASES.items() for n in counts)
    assert all(len(counts) == 2 for counts in CASES.values())
    for c in calibrations.values():
        assert 20 <= c.measured_mb <= 1000, c  # well above allocator noise, below the machine's memory


@pytest.mark.parametrize("case", [(m, n) for m, counts in CASES.items() for n in counts], ids=str)
def test_peak_memory_within_10_percent(calibrations, case):
    c = calibrations[case]
    assert abs(c.memory_error) <= TOLERANCE, (f"{c.model} at {c.frames} frames: {c.measured_mb:.1f} MB measured, "
                                              f"{c.predicted_mb:.1f} predicted (peak at {c.stage})")


@pytest.mark.parametrize("case", [(m, n) for m, counts in CASES.items() for n in counts], ids=str)
def test_flops_within_10_percent(calibrations, case):
    c = calibrations[case]
    assert abs(c.flops_error) <= TOLERANCE, (c.measured_flops, c.predicted_flops)


def test_the_specs_peak_in_different_stages(calibrations):
    """Three mechanisms: tiny-uniform peaks in its vision tower, tiny-fastv in the causal mask its prefill builds,
    tiny-visionzip in vision_attention's second tower pass (with q and k captured)."""
    stages = {model: {c.stage.split(" for ")[0] for (m, _), c in calibrations.items() if m == model} for model in CASES}
    assert stages == {"tiny-uniform": {"vision tower"}, "tiny-fastv": {"causal mask"},
                      "tiny-visionzip": {"vision_attention: the tower again"}}


@pytest.mark.parametrize("name", ["tiny-uniform", "qwen25vl-tiny-uniform"])
def test_parameter_counts_are_the_loaded_models(name):
    spec = MODELS.get(name)
    model = VideoModel(spec).backbone.model
    assert parameters(architecture_of(spec), vilamp=False) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["llava-ov-7b-uniform", "qwen25vl-7b-uniform", "vilamp"])
def test_full_size_parameter_counts_are_the_meta_models(name):
    spec = MODELS.get(name)
    model = meta_backbone(spec).model
    assert parameters(architecture_of(spec), vilamp=name == "vilamp") == sum(p.numel() for p in model.parameters())


def test_full_size_flops_are_the_counters_on_the_meta_device():
    spec = MODELS.get("llava-ov-7b-uniform")
    arch, model = architecture_of(spec), meta_backbone(spec).model
    frames, tokens = 4, 3000
    with torch.inference_mode():
        with FlopCounterMode(display=False) as vision:
            model.model.get_video_features(torch.empty(1, frames, 3, 384, 384, device="meta", dtype=torch.bfloat16))
        with FlopCounterMode(display=False) as prefill:
            model(inputs_embeds=torch.empty(1, tokens, arch.llm.hidden, device="meta", dtype=torch.bfloat16),
                  use_cache=True, logits_to_keep=1)
    assert vision.get_total_flops() == flops.vit(frames, 729, arch.vision) + flops.mlp(frames * 729, arch.projector)
    assert prefill.get_total_flops() == flops.llm_prefill([tokens] * arch.llm.layers, arch.llm)
