"""Fault injection for the runner tests: a model actor that dies on a chosen sample, as a segfault or an OOM
kill would; and a spec slow enough that a run can be stopped midway.

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
from harness.run.pipeline import Decoded
from harness.run.workers import DecodeInfo, ModelWorker

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CrashingWorker(ModelWorker):
    """Calls os._exit(1) on receiving `victim`, on each of its first `crashes` attempts.

    Attempts are counted in the file `tally` (one line each), since a dying actor keeps no state of its own.
    """

    victim: ClassVar[str]
    crashes: ClassVar[int]
    tally: ClassVar[Path]

    def run(self, sample: Sample) -> SampleResult:  # decode_in_model
        self._maybe_die(sample)
        return super().run(sample)

    def infer(self, sample: Sample, decoded: Decoded, info: DecodeInfo) -> SampleResult:  # pipelined
        self._maybe_die(sample)
        return super().infer(sample, decoded, info)

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


# A model step of 0.5 s: after the first journal line a run has seconds to go, against a 20 ms poll.
SLOW_SPEC = """\
specs:
  - name: slow
    description: fixed-cost backbone, 0.5 s a sample, so that a run can be stopped midway
    backbone: {name: fixed-cost, step_s: 0.5}
    selector: {name: uniform, n: 4}
"""
