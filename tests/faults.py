"""Fault injection for the runner tests: a model or decode actor that dies on a chosen sample, as a segfault or an
OOM kill would; a model actor whose replacement dies while loading; and a spec slow enough that a run can be
stopped midway.

This module is imported from tests/ on pytest's path, which Ray workers do not have, so its classes travel to
the workers by value (cloudpickle) instead of by module name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import ClassVar

from ray import cloudpickle

from harness.core.records import Sample, SampleResult
from harness.data.tasks import TaskSpec
from harness.model.specs import ModelSpec
from harness.run.pipeline import Decoded
from harness.run.workers import DecodeInfo, DecodeWorker, ModelWorker

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CrashingWorker(ModelWorker):
    """Calls os._exit(1) at the end of its work on `victim`, as a crash in the model's forward pass would, on each
    of its first `crashes` attempts. Dying the instant a call starts could lose the reply of the call before it
    while still unsent (no driver can then tell which call the actor died on).

    Attempts are counted in the file `tally` (one line each), since a dying actor keeps no state of its own.
    """

    victim: ClassVar[str]
    crashes: ClassVar[int]
    tally: ClassVar[Path]

    def run(self, sample: Sample) -> SampleResult:  # decode_in_model
        result = super().run(sample)
        self._maybe_die(sample)
        return result

    def infer(self, decoded: Decoded | None, info: DecodeInfo | SampleResult) -> SampleResult:  # pipelined
        result = super().infer(decoded, info)
        if isinstance(info, DecodeInfo):
            self._maybe_die(info.sample)
        return result

    def _maybe_die(self, sample: Sample) -> None:
        if sample.id != self.victim:
            return
        with self.tally.open("a") as f:
            f.write("attempt\n")
        if len(self.tally.read_text().splitlines()) <= self.crashes:
            os._exit(1)


def crashing(victim: str, crashes: int, tally: Path) -> type[ModelWorker]:
    """A model actor class dying on `victim`'s first `crashes` attempts (attempts counted in the file `tally`)."""
    return type("CrashingWorker", (CrashingWorker,), {"victim": victim, "crashes": crashes, "tally": tally})


class CrashingDecoder(DecodeWorker):
    """A decode actor calling os._exit(1) at the end of its work on `victim`'s first attempt (counted in the file
    `tally`), as CrashingWorker does."""

    victim: ClassVar[str]
    tally: ClassVar[Path]

    def decode(self, sample: Sample) -> tuple[DecodeInfo | SampleResult, Decoded | None]:
        decoded = super().decode(sample)
        if sample.id == self.victim:
            with self.tally.open("a") as f:
                f.write("attempt\n")
            if len(self.tally.read_text().splitlines()) == 1:
                os._exit(1)
        return decoded


def crashing_decoder(victim: str, tally: Path) -> type[DecodeWorker]:
    return type("CrashingDecoder", (CrashingDecoder,), {"victim": victim, "tally": tally})


class FragileReplacement(CrashingWorker):
    """Dies on `victim` once; the actor started in its place dies loading (as on a node that is going down), and
    the one after that runs. Actors starting are counted in `tally` + ".actors"."""

    def configure(self, spec: ModelSpec, tasks: tuple[TaskSpec, ...], prompt: str | None) -> tuple[str, str]:
        actors = self.tally.with_suffix(".actors")
        with actors.open("a") as f:
            f.write("actor\n")
        if len(actors.read_text().splitlines()) == 2:  # the first replacement
            os._exit(1)
        return super().configure(spec, tasks, prompt)


def fragile_replacement(victim: str, tally: Path) -> type[ModelWorker]:
    return type("FragileReplacement", (FragileReplacement,), {"victim": victim, "crashes": 1, "tally": tally})


# A model step of 0.5 s: after the first journal line a run has seconds to go, against a 20 ms poll.
SLOW_SPEC = """\
specs:
  - name: slow
    description: fixed-cost backbone, 0.5 s a sample, so that a run can be stopped midway
    backbone: {name: fixed-cost, step_s: 0.5}
    selector: {name: uniform, n: 4}
"""
