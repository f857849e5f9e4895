"""Start (or join) a Ray cluster without any traffic leaving this machine.

Ray's usage-stats module probes the cloud-metadata address 169.254.169.254 at start-up whenever
`~/ray_bootstrap_config.yaml` is missing, even with RAY_USAGE_STATS_ENABLED=0 (measured here, see
shared/notes/environment.md). A local cluster is therefore started with HOME pointing at a directory
of ours that holds a `provider: {type: local}` bootstrap config; HOME is restored right after. The nodes of a
multi-node cluster (`harness node`: `run_node`) take the same measures and the few more a `ray start` needs.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from harness.core.config import ConfigError
from harness.core.paths import cache_dir
from harness.run.config import RunnerConfig
from harness.run.interrupt import signal_handlers_kept

_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# A `ray start` head's dashboard reports even *disabled* usage stats to usage-stats.ray.io (usage_stats_head.py,
# _report_disabled_usage_sync; clusters started by ray.init are exempt): the report goes to a closed loopback port.
_NOWHERE = "http://127.0.0.1:9/"
LOOPBACK_NODE_IP = "127.0.0.2"  # a loopback address Ray does not rewrite (see run_node)


def start_ray(num_cpus: int, address: str | None = None, object_store_mb: int = 512) -> None:
    """Join `address` (or RAY_ADDRESS) when given, else start a private local cluster of `num_cpus`."""
    import ray

    if ray.is_initialized():
        return
    os.environ.update(_QUIET_ENV)
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Workers inherit the driver's environment; pin the cache and real HOME before HOME is swapped.
    worker_env = {"HARNESS_CACHE": str(cache_dir()), "HOME": str(Path.home()), **_QUIET_ENV}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HARNESS_TASKS_DIR"):
        if key in os.environ:
            worker_env[key] = os.environ[key]
    runtime_env = {"env_vars": worker_env}
    if address:
        with signal_handlers_kept():  # ray.init's SIGTERM handler would abort the driver inside ray.wait
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, **_loopback_driver(address))
        return
    # A single-machine cluster takes the loopback address (Ray's own rule on macOS/Windows) instead of
    # finding its IP by connecting a UDP socket to 8.8.8.8. Workers read the variable at import; this
    # process has imported Ray already, so its constant is set directly.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    runtime_env["env_vars"]["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    real_home = os.environ.get("HOME")
    os.environ["HOME"] = str(bootstrap_home())
    try:
        with signal_handlers_kept():  # ray.init's SIGTERM handler would abort the driver inside ray.wait
            ray.init(
                address="local",  # a new cluster, never one a `ray start` left on this machine (/tmp/ray)
                num_cpus=num_cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                object_store_memory=object_store_mb * 2**20,
                runtime_env=runtime_env,
                log_to_driver=False,
                configure_logging=False,
            )
    finally:
        if real_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = real_home


def _loopback_driver(address: str) -> dict[str, str]:
    """A driver joining a cluster on this machine's loopback sits on the nodes' address (Ray would take the
    machine's outward IP for it, found by a UDP socket towards 8.8.8.8); 127.0.0.1 / localhost cannot be joined
    without that rewrite, so they are refused in one line."""
    host = address.rsplit(":", 1)[0].removeprefix("ray://")
    if host in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"--ray-address {address}: Ray rewrites {host} to this machine's outward IP (found by a UDP "
                          f"socket towards 8.8.8.8); start the nodes with `harness node` (their default address is "
                          f"{LOOPBACK_NODE_IP}) and join {LOOPBACK_NODE_IP}:PORT")
    return {"_node_ip_address": host} if host.startswith("127.") else {}


def bootstrap_home() -> Path:
    """A HOME holding `ray_bootstrap_config.yaml` (a local provider): Ray then skips its cloud-metadata probe."""
    home = cache_dir() / "ray-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    return home


def node_args(head: bool, address: str | None, port: int, num_cpus: int | None, num_gpus: int | None,
              node_ip: str) -> list[str]:
    """`ray start` arguments for one node of a cluster: the head, or a worker joining `address`; blocking (the node
    lives as long as the command), no usage stats, no dashboard, an explicit node IP."""
    args = ["start", "--block", "--disable-usage-stats", "--node-ip-address", node_ip]
    args += ["--head", "--port", str(port), "--include-dashboard", "false"] if head else ["--address", str(address)]
    if node_ip.startswith("127."):  # several nodes on one machine: every port picked free by the OS, none shared
        args += ["--min-worker-port", "0", "--max-worker-port", "0", "--dashboard-agent-listen-port", "0"]
    if num_cpus is not None:
        args += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        args += ["--num-gpus", str(num_gpus)]
    return args


def run_node(args: list[str], node_ip: str) -> None:
    """Run `ray start ARGS` in this process with start_ray's measures, so that no process of the node opens a socket
    towards an outside address (checked with strace -f -e trace=connect):
    - the bootstrap HOME (no cloud-metadata probe), no usage stats, and the head's "usage disabled" report sent to
      a closed loopback port;
    - Ray finds a process's own IP, wherever it is not told, by connecting a UDP socket to 8.8.8.8
      (GetNodeIpAddressFromPerspective): `ray start` itself does so while checking versions against the head, so
      here that lookup answers `node_ip`; the node's own processes (its runtime-env agent asks, for a log prefix)
      inherit RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, under which Ray answers loopback without a socket. This process
      keeps multi-node mode on, or `ray start --address` would refuse to join.
    - nodes on one machine start one at a time (their socket files; a worker once the head's GCS listens), every
      port chosen free by the OS.
    Nodes on one machine use 127.0.0.2 (LOOPBACK_NODE_IP), not 127.0.0.1: Ray rewrites a 127.0.0.1 or localhost
    address it is asked to join to the machine's outward IP, found by that same UDP socket."""
    import fcntl

    import ray._private.node as node
    import ray._private.ray_constants as constants
    import ray._private.services as services
    from ray.scripts.scripts import main

    os.environ.update({**_QUIET_ENV, "HOME": str(bootstrap_home()), "HARNESS_CACHE": str(cache_dir()),
                       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_REPORT_URL": _NOWHERE})
    constants.ENABLE_RAY_CLUSTER = True
    services.node_ip_address_from_perspective = lambda address=None: node_ip
    # Nodes starting at once on one machine race for the session's socket names (Node._make_inc_temp checks, then
    # creates): one start at a time, under a lock file shared by every `harness node` of this cache.
    start = node.Node.__init__

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> None:
        with (bootstrap_home() / "node-start.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            start(self, *args, **kwargs)

    node.Node.__init__ = one_at_a_time
    if "--address" in args:  # the head takes the lock before its GCS listens: wait for that, or both would wait
        _wait_for_head(args[args.index("--address") + 1])
    sys.argv = ["ray", *args]
    main()


def _wait_for_head(address: str, timeout_s: float = 300.0) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise ConfigError(f"no Ray head answers at {address} after {timeout_s:g} s; start it first "
                                  "(`harness node --head`)") from None
            time.sleep(0.2)


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def alive_nodes() -> set[str]:
    import ray

    return {node["NodeID"] for node in ray.nodes() if node["Alive"]}


# How long the end of a run waits for the cluster to confirm a node it suspects lost: Ray's GCS declares a node dead
# after 5 missed health checks 3 s apart (gcs health_check_failure_threshold / period_ms defaults).
NODE_VERDICT_S = 30.0


def lost_nodes(start: set[str], suspects: set[str], wait_s: float = NODE_VERDICT_S) -> list[str]:
    """The nodes alive at the start that are dead now, once every suspect is confirmed dead or `wait_s` passed."""
    deadline = time.monotonic() + (wait_s if suspects else 0.0)
    while True:
        dead = start - alive_nodes()
        if suspects <= dead or time.monotonic() >= deadline:
            return sorted(dead)
        time.sleep(0.5)


def join_cluster(config: RunnerConfig, decoders: int) -> dict[str, float]:
    """Start (or join) the Ray cluster and return its resources; a ConfigError (one line) when GPU placement finds no
    GPU on it, so `eval` stops before any run directory or actor exists."""
    import ray

    start_ray(num_cpus=max(config.workers * config.threads_per_worker + decoders, 1), address=config.ray_address)
    resources = ray.cluster_resources()
    if config.on_gpus and int(resources.get("GPU", 0)) < 1:
        where = f"the Ray cluster at {config.ray_address}" if config.ray_address else "this machine's Ray cluster"
        asked = f"device {config.device!r}" if config.device.startswith("cuda") else "placement gpu"
        raise ConfigError(f"{asked} places one model actor per GPU, but {where} has no GPU "
                          f"resource (its resources: {_resource_line(resources)}); use --device cpu, or start the "
                          "worker nodes with --num-gpus")
    return resources


def _resource_line(resources: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU", "memory")) or "none"
