"""Stopping a run on SIGINT or SIGTERM: no more samples handed out, the journal closed, exit 128 + signal.

Both handlers are installed explicitly. A process inherits SIGINT *ignored* from a shell that ignores it (a
background job `cmd &` of a script, nohup, CI runners) and Python then installs no KeyboardInterrupt handler;
SIGTERM, what SLURM and Kubernetes send on preemption, has none by default and gets one from ray.init that
calls sys.exit, which inside ray.wait kills the driver with a C stack dump instead of unwinding it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], Any] | int | None  # what signal.signal takes and returns


class Interrupted(KeyboardInterrupt):
    """A run stopped by `signum`; its journal is in `run_dir` (None: stopped before the run had one)."""

    def __init__(self, signum: int = signal.SIGINT, run_dir: Path | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.run_dir = run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def interrupted_in(run_dir: Path, exc: KeyboardInterrupt) -> Interrupted:
    """`exc`, which stopped the run in `run_dir`, as an `Interrupted` naming that directory."""
    return Interrupted(exc.signum if isinstance(exc, Interrupted) else signal.SIGINT, run_dir)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block SIGINT and SIGTERM raise `Interrupted`; any KeyboardInterrupt leaving it becomes one that
    names the signal that came.

    Ray replaces the handler's exception with a plain KeyboardInterrupt when the signal arrives inside ray.wait
    or ray.get, so the signal is recorded here; the run directory comes from an `Interrupted` raised on the way.
    """
    received: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> NoReturn:
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    except KeyboardInterrupt as exc:
        run_dir = exc.run_dir if isinstance(exc, Interrupted) else None
        raise Interrupted(received[-1] if received else signal.SIGINT, run_dir) from exc
    finally:
        _restore(previous)


@contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """The SIGINT and SIGTERM handlers after the block are those before it (ray.init replaces SIGTERM's)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread has handlers to set
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        _restore(previous)


def _restore(handlers: dict[signal.Signals, Handler]) -> None:
    for signum, handler in handlers.items():
        if handler is not None:  # None: installed outside Python, nothing this module can put back
            signal.signal(signum, handler)
