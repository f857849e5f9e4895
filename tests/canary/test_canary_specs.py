"""Every canary spec runs a sample through the whole path on the shipped canary checkpoint."""

import pytest

from harness.core.records import LETTERS
from harness.data.tasks import get_task
from harness.model.specs import MODELS
from harness.run.pipeline import Pipeline

CANARY_SPECS = [name for name in MODELS.names() if name.startswith("canary-")]


def test_every_method_the_tiny_backbone_runs_has_a_canary_spec():
    assert {"canary-uniform", "canary-uniform-1fps", "canary-uniform-vilamp-budget", "canary-vilamp-tf",
            "canary-topk", "canary-aks", "canary-bolt", "canary-visionzip", "canary-tome", "canary-dycoke",
            "canary-fastv", "canary-blind"} <= set(CANARY_SPECS)


@pytest.mark.parametrize("name", CANARY_SPECS)
def test_canary_spec_runs_one_sample(name, word_sample):
    result = Pipeline(MODELS.get(name), get_task("needle")).run(word_sample())
    assert result.status == "ok" and result.raw_output in tuple(LETTERS[:4]), result.error
    assert (result.visual_tokens == 0) == (name == "canary-blind")
