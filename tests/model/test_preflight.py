"""The preflight: a spec's arguments, hooks and placement are checked from the classes alone, one line each."""

import pytest

from harness.core.config import ConfigError
from harness.model.preflight import Incompatible, build_methods, check_combination, check_spec
from harness.model.specs import MODELS, Component, ModelSpec


def spec(backbone, selector="uniform", reducer="none", selector_args=None, reducer_args=None):
    return ModelSpec("probe", "", Component(backbone), Component(selector, selector_args or {}),
                     Component(reducer, reducer_args or {}))


def one_line_error(bad: ModelSpec, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        check_combination(bad)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_every_registered_spec_passes():
    for name in MODELS.names():
        check_combination(MODELS.get(name))


def test_unknown_selector_argument_names_the_valid_ones():
    one_line_error(spec("tiny", selector_args={"frames": 8}), "'probe'", "frame selector 'uniform'",
                   "unknown key(s) ['frames']", "allowed:", "'n'", "'fps'")


def test_mistyped_and_out_of_range_arguments():
    one_line_error(spec("tiny", selector_args={"n": "16"}), "expected int")
    one_line_error(spec("tiny", reducer="tome", reducer_args={"keep_ratio": 2.0}), "keep_ratio must be in (0, 1]")


def test_a_hook_the_backbone_lacks():
    one_line_error(spec("fixed-cost", reducer="visionzip"), "reducer 'visionzip' needs backbone hook(s) "
                   "vision_attention, which backbone 'fixed-cost' does not offer")
    one_line_error(spec("fixed-cost", reducer="fastv"), "needs backbone hook(s) llm_prune")
    one_line_error(spec("tiny", selector="dks-stream", selector_args={"encoder": "backbone"}, reducer="dfm"),
                   "selector 'dks-stream' needs backbone hook(s) image_text_encoder")


@pytest.mark.parametrize("reducer", ["visionzip", "tome"])
def test_a_merging_reducer_on_a_grid_placed_backbone(reducer):
    bad = ModelSpec("probe", "", Component("qwen25vl", {"tiny_seed": 0}), Component("uniform", {"n": 4}),
                    Component(reducer))
    message = one_line_error(bad, f"reducer {reducer!r} merges tokens", "'qwen25vl' places every visual token")
    assert "dfm" in message and "dycoke" in message and "visionzip" not in message.split("take:")[1]


def test_a_streaming_selector_needs_a_streaming_reducer():
    with pytest.raises(ConfigError, match="cannot reduce a stream; use one of: dfm"):
        build_methods(spec("tiny", selector="dks-stream", reducer="none"))


def test_a_keyframe_selectors_encoder_is_checked_by_name_and_on_disk(tmp_path, monkeypatch):
    one_line_error(spec("tiny", selector="topk", selector_args={"encoder": "tiny-clipp"}),
                   "unknown image-text encoder 'tiny-clipp' (did you mean 'tiny-clip'?)")
    monkeypatch.setenv("HARNESS_CLIP_B32", str(tmp_path / "absent"))
    on_disk = spec("tiny", selector="aks", selector_args={"encoder": "clip-vit-b32"})
    check_combination(on_disk)  # the pairing is fine (the spec listing keeps it) ...
    with pytest.raises(ConfigError, match="clip-vit-b32: no checkpoint at .*absent"):
        check_spec(on_disk)  # ... but a run needs the weights on disk


def test_a_coarse_encode_with_a_full_resolution_reducer_is_refused():
    spec = ModelSpec("clips-zip", "", Component("tiny"), Component("keyclips", {"anchors": 4, "encoder": "tiny-clip"}),
                     Component("visionzip"))
    with pytest.raises(Incompatible, match="encoded coarse, but reducer 'visionzip' reads the full-resolution encoder "
                                           "through vision_attention"):
        build_methods(spec)
    build_methods(ModelSpec("clips-tome", "", spec.backbone, spec.selector, Component("tome")))  # tokens only: fine
