"""Pools of Ray actors of one kind (decode or model), replaceable by slot and kept across runs in this process."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Literal

Stage = Literal["decode", "model"]  # also the kind of actor a stage runs on


class Pool:
    """Actors of one kind, replaceable by slot, kept for the next run in this process with the same key (what
    the processes are: worker class, threads, device, resources); each run configures them with its own setup.

    Starting an actor costs seconds (a process importing torch, then loading the model), more than a
    short run; tests, `make bench`, sweeps and multi-run comparisons reuse them.
    """

    def __init__(self, key: tuple[Any, ...], make: Callable[[], Any], depth: int = 1) -> None:
        self.key = key
        self.make = make
        self.depth = depth  # calls each actor holds at once: with 2, the next is queued on it while one runs
        self.setup: tuple[Any, ...] = ()  # the run's (spec, tasks, prompt), which `configure` gives each actor
        self.actors: list[Any] = []
        self.configured: list[tuple[Any, ...] | None] = []  # the setup each actor was last configured with
        self.names: list[str] = []  # actor ids, for each result's `worker`
        self.nodes: list[str] = []  # the Ray node each actor runs on
        self.idle: deque[int] = deque()  # one entry per free call place: a slot appears up to `depth` times

    def replace(self, slot: int) -> Any:
        """A new actor in `slot` (the old one's free places go with it); the returned ref resolves to its
        (id, node) once it has loaded (`placed`)."""
        self.actors[slot], self.configured[slot] = self.make(), None
        self.idle = deque(s for s in self.idle if s != slot)
        return self.prepare(slot)

    def prepare(self, slot: int) -> Any:
        """Ref to the (id, node) of the actor in `slot` once it holds this run's setup: configured (its model loaded)
        when it held another, merely asked otherwise."""
        actor = self.actors[slot]
        if self.configured[slot] == self.setup:
            return actor.ready.remote()
        self.configured[slot] = None  # until it answers: a configure that raises leaves it unconfigured
        return actor.configure.remote(*self.setup)

    def placed(self, slot: int, ready: tuple[str, str]) -> None:
        """The actor in `slot` answered `prepare`: it holds this run's setup (a failed configure is retried)."""
        self.names[slot], self.nodes[slot] = ready
        self.configured[slot] = self.setup

    def open_all(self, slots: range | list[int]) -> None:
        """Every place of `slots` free, the first place of each actor before any second (spread before queueing)."""
        self.idle.extend(slot for _ in range(self.depth) for slot in slots)

    def resize(self, count: int) -> None:
        """Keep the first `count` slots, or start new actors (not yet configured or placed) up to `count`."""
        del self.actors[count:], self.configured[count:], self.names[count:], self.nodes[count:]
        for _ in range(count - len(self.actors)):
            self.actors.append(self.make())
            self.configured.append(None)
            self.names.append("")
            self.nodes.append("")


POOLS: dict[Stage, Pool] = {}  # this process's actors, by kind, across runs


def release(kind: Stage, key: tuple[Any, ...], count: int) -> None:
    """Kill cached actors of `kind` this run will not use, so they hold no CPU or GPU it needs."""
    import ray

    pool = POOLS.get(kind)
    if pool is None:
        return
    keep = count if pool.key == key else 0
    if pool.key[0] == key[0]:  # key[0]: the Ray session; handles of an earlier cluster are gone anyway
        for actor in pool.actors[keep:]:
            ray.kill(actor)
    pool.resize(min(keep, len(pool.actors)))


def open_pool(kind: Stage, key: tuple[Any, ...], make: Callable[[], Any], count: int, setup: tuple[Any, ...],
              depth: int = 1) -> tuple[Pool, dict[int, Any]]:
    """`count` actors of `kind` asked to hold `setup`, each to take `depth` calls at once: the cached ones when the
    key matches (configured anew when they held another setup), new ones otherwise; with the refs `ready_pool`
    waits for. (Both pools are opened before either is waited for: their processes start side by side.)"""
    pool = POOLS.get(kind)
    if pool is None or pool.key != key:
        pool = POOLS[kind] = Pool(key, make)
    pool.depth, pool.setup = depth, setup
    pool.resize(max(count, len(pool.actors)))
    return pool, {slot: pool.prepare(slot) for slot in range(count)}


def ready_pool(pool: Pool, refs: dict[int, Any]) -> Pool:
    """The opened `pool` once each of its actors has answered (one that died since the last run is replaced)."""
    import ray

    for slot, ref in refs.items():
        try:
            pool.placed(slot, ray.get(ref))
        except ray.exceptions.RayActorError:  # died since the last run: start another
            pool.placed(slot, ray.get(pool.replace(slot)))
    pool.idle = deque()
    pool.open_all(range(len(refs)))
    return pool
