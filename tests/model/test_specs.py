"""The model specs: loaded from specs/*.yaml strictly, every baseline runs one sample through the real pipeline on
the tiny backbone, and `harness models` lists each with its hooks (aliases as such)."""

import dataclasses
import math
import shutil
from pathlib import Path

import pytest

from harness.cli import cmd_models
from harness.core.config import ConfigError
from harness.core.paths import REPO_ROOT, specs_dir
from harness.core.records import Sample
from harness.data.tasks import get_task
from harness.model import specs
from harness.model.specs import MODELS, Component, ModelSpec, SpecRegistry, load_specs
from harness.run.pipeline import Pipeline
from harness.video.reader import read_frames

# spec → (backbone hooks listed by `harness models`, visual tokens entering the LLM for a 6 s video at 10 fps)
EXPECTED = {
    "tiny-uniform-vilamp-budget": ("none", 16 * 6 + 1),  # ViLAMP: 6 frames at 1 fps, all keyframes
    "tiny-topk": ("none", 16 * 6 + 1),  # 1 fps pool of 6 < k: every candidate; the CLIP is the selector's own
    "tiny-aks": ("none", 16 * 6 + 1),
    "tiny-bolt": ("none", 16 * 6 + 1),
    "tiny-visionzip": ("vision_attention", 16 * 4 + 1),  # 16 frames × 25% of 16 tokens
    "tiny-tome": ("none", 64 + 1),  # 25% of 256
    "tiny-divprune": ("none", 64 + 1),  # 25% of 256, the max–min diverse ones
    "tiny-dycoke": ("none", 4 * (16 + 3 * 4) + 1),  # 4 windows: anchor + 3 × ⌊0.3 · 16⌋
    "tiny-fastv": ("llm_prune", 256 + 1),
    "tiny-fastvid": ("vision_attention", 16 * 4 + 1),  # 16 frames × 25% of 16 tokens (salient + density-merged)
    "tiny-flashvid": ("vision_attention", 16 * 4 + 1),  # 16 frames × ⌈25% of 16⌉ (ADTS + tree-merged)
    "tiny-vidcom2": ("none", 64 + 1),  # 25% of 256, spread over frames by uniqueness
    "tiny-pyramiddrop": ("llm_prune", 256 + 1),  # every token enters; 64 remain from layer 1
    "tiny-framefusion": ("llm_fuse", 256 + 1),  # every token enters; merged and pruned in the first layers
    "tiny-adardkey": ("none", 16 * 6 + 1),  # 1 fps pool of 6 < k: every candidate
    "tiny-keyclips": ("coarse_encode", 6 * 4 + 1),  # pool of 6 < 16 anchors × 4: all 6 frames at 2 × 2 tokens
}
# in-LLM reduction: the visual tokens (+ the image_newline) from the last stage on
AFTER_LLM = {"tiny-fastv": math.ceil(0.5 * 256) + 1, "tiny-pyramiddrop": 64 + 1}
# LLaVA-OV tiny is the tiny backbone's weights: its comparison names are aliases of the tiny specs
ALIASES = {f"llava-ov-tiny-{m}": f"tiny-{m}" for m in ("uniform", "uniform-vilamp-budget", "topk", "aks", "bolt",
                                                      "visionzip", "tome", "dycoke", "fastv", "divprune", "fastvid",
                                                      "flashvid", "vidcom2", "pyramiddrop", "framefusion",
                                                      "adardkey", "keyclips")}
ALIASES["llava-ov-tiny-vilamp-tf"] = "vilamp-tf"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_runs_one_sample(name, word_sample):
    sample = word_sample()
    result = Pipeline(MODELS.get(name), get_task("needle")).run(sample)
    assert result.status == "ok" and result.raw_output in ("A", "B", "C", "D"), result.error  # answers by option letter
    assert result.visual_tokens == EXPECTED[name][1]
    assert result.needle_retained is not None and result.n_frames_decoded >= len(result.frame_indices) > 0
    if name in AFTER_LLM:
        assert result.visual_tokens_after_llm_prune == AFTER_LLM[name]
    elif name == "tiny-framefusion":  # how many merge depends on the frames; the prune keeps ≥ 1 and < all
        assert 1 < result.visual_tokens_after_llm_prune < 256 + 1
    else:
        assert result.visual_tokens_after_llm_prune is None


REAL_TINY = sorted(n for n in MODELS.names() if n.split("-tiny-")[0] in ("llava-ov", "llava-video", "qwen25vl")
                   and n not in ALIASES)  # an alias runs as its tiny spec, above


@pytest.mark.parametrize("name", REAL_TINY)
def test_every_real_backbone_comparison_spec_runs_one_sample(name, word_sample):
    sample = word_sample()
    result = Pipeline(MODELS.get(name), get_task("needle")).run(sample)
    assert result.status == "ok" and result.raw_output in ("A", "B", "C", "D"), result.error
    assert result.visual_tokens > 0 and result.needle_retained is not None


def test_qwen_vilamp_tf_merges_non_key_groups_end_to_end(word_sample):
    """K=2 keyframes of 12 frames: most temporal groups (2 frames per row) merge to one token each."""
    sample = word_sample(num_frames=12, fps=1.0)
    spec = MODELS.get("qwen25vl-tiny-vilamp-tf")
    spec = dataclasses.replace(spec, selector=Component("dks-stream", {**spec.selector.args, "k": 2}))
    pipeline = Pipeline(spec, get_task("needle"))
    result = pipeline.run(sample)
    assert result.status == "ok" and result.raw_output in ("A", "B", "C", "D"), result.error
    frames, keys = result.frame_indices, set(result.keyframes)
    key_groups = [any(i in keys for i in frames[g : g + 2]) for g in range(0, len(frames), 2)]
    assert len(frames) == 12 and 0 < sum(key_groups) < len(key_groups)
    m = pipeline.backbone.encode_frames(read_frames(sample.video, frames[:2])).tokens.shape[1]  # per group
    assert result.visual_tokens == m * sum(key_groups) + key_groups.count(False)


def test_comparison_specs_exist_on_each_backbone():
    for family in ("llava-ov", "llava-video", "qwen25vl"):
        for size in ("tiny", "7b"):
            methods = {n.removeprefix(f"{family}-{size}-") for n in MODELS.names() if n.startswith(f"{family}-{size}-")}
            assert {"uniform", "topk", "aks", "bolt", "dycoke", "fastv"} <= methods, (family, size)
            # the 2025–26 methods (issue 16) run on every family: their merged tokens declare rows
            assert {"fastvid", "flashvid", "vidcom2", "divprune", "pyramiddrop", "framefusion", "adardkey",
                    "keyclips"} <= methods, (family, size)
            assert "vilamp-tf" in methods, (family, size)  # DFM declares its merged tokens' M-RoPE rows
            # VisionZip/ToMe tokens have no M-RoPE position in Qwen2.5-VL; its tokens per frame vary with frame size
            merging = {"visionzip", "tome", "uniform-vilamp-budget"}
            assert (merging <= methods) == (family != "qwen25vl") and not (merging & methods and family == "qwen25vl")


def test_models_lists_description_and_hook(capsys):
    assert cmd_models() == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(MODELS.names())
    for name, (hook, _) in EXPECTED.items():
        assert f"hook: {hook} " in lines[name] and MODELS.get(name).description in lines[name]


def test_the_model_half_alone_carries_fastv_pruning(write_test_video):
    """The lmms-eval plugin answers through VideoModel (decode, visual, generate): FastV must prune there too."""
    from harness.core.measure import StageTimer
    from harness.core.records import GenerationConfig, Prompt
    from harness.model.video_model import VideoModel

    video = write_test_video(num_frames=60, fps=10.0)
    sample = Sample(id="s", task="needle", video=str(video.path), question="Which word appeared?", options=(),
                    answer=None)
    model = VideoModel(MODELS.get("tiny-fastv"))
    timer = StageTimer()
    visual, _ = model.visual(sample, model.decode(sample, timer), timer)
    generation = model.generate(visual, Prompt(system="", user="What moves?"), GenerationConfig(max_new_tokens=2))
    assert generation.visual_tokens == 256 + 1
    assert generation.visual_tokens_after_llm_prune == math.ceil(0.5 * 256) + 1


def test_llava_ov_tiny_names_are_aliases_of_the_tiny_specs(capsys):
    assert cmd_models() == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    for alias, canonical in ALIASES.items():
        assert MODELS.get(alias) is MODELS.get(canonical)
        assert lines[alias] == ["alias", "of", canonical]


def test_budget_tokens_per_frame_come_from_the_backbone_class():
    per_frame = {"tiny-uniform-vilamp-budget": 16, "llava-video-tiny-uniform-vilamp-budget": 16,
                 "llava-ov-7b-uniform-vilamp-budget": 196, "llava-video-7b-uniform-vilamp-budget": 196}
    for name, tokens in per_frame.items():
        assert MODELS.get(name).selector == Component("uniform", {"budget": "vilamp", "tokens_per_frame": tokens})


def test_models_reads_the_yaml_once(monkeypatch):
    calls = []
    spec = ModelSpec("x", "d", Component("tiny"), Component("uniform"))
    monkeypatch.setattr(specs, "load_specs", lambda directory: calls.append(directory) or {"x": spec})
    registry = SpecRegistry()
    assert registry.get("x") is spec and registry.names() == ["x"] and "x" in registry and registry.get("x") is spec
    assert calls == [specs_dir()]


MY_SPEC = """
specs:
  - name: my-tiny-tome
    description: tiny backbone, 8 uniform frames, ToMe keeping half the tokens
    backbone: tiny
    selector: {name: uniform, n: 8}
    reducer: {name: tome, keep_ratio: 0.5}
    answer: option_letter
"""


def spec_dir(tmp_path: Path, text: str, shipped: bool = False) -> Path:
    """A spec directory holding my.yaml (and a copy of specs/ when `shipped`)."""
    directory = tmp_path / "specs"
    if shipped:
        shutil.copytree(REPO_ROOT / "specs", directory)
    directory.mkdir(exist_ok=True)
    (directory / "my.yaml").write_text(text)
    return directory


def test_a_user_spec_yaml_is_loaded_and_listed(tmp_path, monkeypatch, capsys):
    """No Python: a new YAML file in HARNESS_SPECS_DIR names a new spec of existing components and new arguments."""
    monkeypatch.setenv("HARNESS_SPECS_DIR", str(spec_dir(tmp_path, MY_SPEC, shipped=True)))
    monkeypatch.setattr(specs, "MODELS", SpecRegistry())
    spec = specs.MODELS.get("my-tiny-tome")
    assert (spec.backbone, spec.selector, spec.reducer, spec.answer) == (
        Component("tiny"), Component("uniform", {"n": 8}), Component("tome", {"keep_ratio": 0.5}), "option_letter")
    assert set(specs.MODELS.names()) == set(MODELS.names()) | {"my-tiny-tome"}
    assert cmd_models() == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.split()[0] == "my-tiny-tome")
    assert spec.description in line and "tome(keep_ratio=0.5)" in line


def entry(**fields: str) -> str:
    """One explicit spec entry as YAML text, `fields` over a valid tiny spec."""
    values = {"name": "x", "description": "d", "backbone": "tiny", "selector": "{name: uniform, n: 8}", **fields}
    return "specs:\n  - {" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}\n"


QWEN = "{name: qwen25vl, tiny_seed: 0}"


@pytest.mark.parametrize("text, match", [
    (entry(selectr="uniform"), r"my\.yaml\.specs\[0\]: unknown key\(s\) \['selectr'\]"),
    (entry(description="[d]"), r"my\.yaml\.specs\[0\]\.description: expected str"),
    (entry(answer="letter"), r"my\.yaml\.specs\[0\]\.answer: 'letter' is not one of"),
    (entry(selector="{n: 8}"), r"my\.yaml: model 'x': selector: a component mapping needs `name:`"),
    (entry(selector="unifrom"), r"my\.yaml: model 'x': unknown frame selector 'unifrom' \(did you mean 'uniform'"),
    (entry(selector="{name: uniform, m: 8}"), r"my\.yaml: model 'x'.*unknown key\(s\) \['m'\]"),  # the preflight's
    (entry(selector="{name: uniform, budget: vilamp, tokens_per_frame: 16}"),
     r"my\.yaml: model 'x': selector 'uniform': remove tokens_per_frame"),
    (entry(backbone=QWEN, selector="{name: uniform, budget: vilamp}"),
     r"my\.yaml: model 'x': budget mode needs a fixed number of tokens per frame"),
    (entry(backbone=QWEN, reducer="tome"), r"my\.yaml: model 'x'.*reducer 'tome'"),  # explicit: an error, not skipped
    ("aliases: {x: tiny-uniform}\n" + entry(), r"my\.yaml: model 'x' is already defined in .*my\.yaml"),
    ("aliases: {y: tiny-unifrom}\n", r"my\.yaml: aliases\.y: unknown model 'tiny-unifrom' \(did you mean"),
])
def test_a_bad_spec_file_names_the_file_and_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_specs(spec_dir(tmp_path, text, shipped="aliases" in text))


def test_a_spec_name_defined_twice_names_both_files(tmp_path):
    with pytest.raises(ConfigError, match=r"tiny\.yaml: model 'tiny-uniform' is already defined in .*my\.yaml"):
        load_specs(spec_dir(tmp_path, entry(name="tiny-uniform"), shipped=True))


GRID = """
grid:
  bases:
    my-tiny: {backbone: tiny, answer: option_letter, vars: {n: 8, what: tiny}}
    my-qwen: {backbone: %s, answer: option_letter, vars: {n: 4, what: qwen}}
  methods:
    u: {description: "{what}: {n} frames", selector: {name: uniform, n: "{n}"}}
    tome: {description: "{what}: ToMe", selector: {name: uniform, n: "{n}"}, reducer: %s}
""" % (QWEN, "{name: tome, keep_ratio: 0.5}")


def test_grid_expands_base_by_method_without_what_the_preflight_rejects(tmp_path):
    loaded = load_specs(spec_dir(tmp_path, GRID))
    assert sorted(loaded) == ["my-qwen-u", "my-tiny-tome", "my-tiny-u"]  # ToMe's merged tokens have no M-RoPE row
    assert loaded["my-qwen-u"] == ModelSpec("my-qwen-u", "qwen: 4 frames", Component("qwen25vl", {"tiny_seed": 0}),
                                            Component("uniform", {"n": 4}), answer="option_letter")
    assert loaded["my-tiny-tome"].reducer == Component("tome", {"keep_ratio": 0.5})


@pytest.mark.parametrize("text, match", [
    # a typo is an error even though the grid leaves out pairs that cannot work together
    (GRID.replace('n: "{n}"}}', 'm: "{n}"}}'), r"my\.yaml: model 'my-tiny-u': frame selector 'uniform': unknown key"),
    (GRID.replace("backbone: tiny", "backbone: tiyn"), r"my\.yaml: model 'my-tiny-u': unknown backbone 'tiyn' \(did you mean"),
    # a method no base can take yields no spec at all: an error too
    (GRID.replace("reducer: {name: tome, keep_ratio: 0.5}", "reducer: visionzip").replace("backbone: tiny", "backbone: fixed-cost"),
     r"my\.yaml: grid\.methods\.tome yields no spec \(.*reducer 'visionzip'"),
    (GRID.replace("{n} frames", "{m} frames"), r"grid\.methods\.u on base 'my-tiny': description: cannot fill"),
])
def test_a_grid_typo_or_a_row_with_no_spec_is_an_error(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_specs(spec_dir(tmp_path, text))
