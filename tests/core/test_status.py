"""The answered statuses and the exception → status mapping shared by the pipeline and the runner."""

import subprocess
import sys
from typing import get_args

import ray.exceptions
import torch

from harness.core.status import ANSWERED, Status, failure_status, first_line
from harness.video.reader import VideoError


def test_answered_is_ok_and_unparsed_only():
    assert ANSWERED == {"ok", "unparsed"} and ANSWERED <= set(get_args(Status))


def test_video_errors_keep_their_own_status():
    assert failure_status(VideoError("missing", "/v.mp4")) == "missing"
    assert failure_status(VideoError("decode_error", "/v.mp4", "bad header")) == "decode_error"


def test_out_of_memory_in_every_form_is_oom():
    assert failure_status(MemoryError()) == "oom"
    assert failure_status(torch.OutOfMemoryError("CUDA out of memory")) == "oom"
    assert failure_status(ray.exceptions.OutOfMemoryError("task killed")) == "oom"
    died = ray.exceptions.RayActorError(error_msg="The actor died because its node was low on memory.")
    assert failure_status(died) == "oom"


def test_anything_else_is_a_model_error():
    assert failure_status(ValueError("shape mismatch")) == "model_error"
    assert failure_status(ray.exceptions.RayActorError(error_msg="The actor died unexpectedly.")) == "model_error"
    assert failure_status(RuntimeError("CUDA error: device-side assert")) == "model_error"


class _Coded(Exception):
    status = "missing"  # a library's own `status` that happens to look like a sample status


def test_only_a_sample_error_carries_its_status():
    assert failure_status(_Coded()) == "model_error"


def test_first_line():
    assert first_line(ValueError("first\nsecond")) == "first"
    assert first_line(KeyError()) == "KeyError"


def test_core_imports_neither_torch_nor_ray():
    code = "import sys, harness.core.status, harness.core.records; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
