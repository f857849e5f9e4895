"""Start (or join) a Ray cluster without any traffic leaving this machine.

Ray's usage-stats module probes the cloud-metadata address 169.254.169.254 at start-up whenever
`~/ray_bootstrap_config.yaml` is missing, even with RAY_USAGE_STATS_ENABLED=0 (measured here, see
shared/notes/environment.md). A local cluster is therefore started with HOME pointing at a directory
of ours that holds a `provider: {type: local}` bootstrap config; HOME is restored right after.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.core.paths import cache_dir
from harness.run.interrupt import signal_handlers_kept

_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


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
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        return
    # A single-machine cluster takes the loopback address (Ray's own rule on macOS/Windows) instead of
    # finding its IP by connecting a UDP socket to 8.8.8.8. Workers read the variable at import; this
    # process has imported Ray already, so its constant is set directly.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    runtime_env["env_vars"]["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    home = cache_dir() / "ray-home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    real_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        with signal_handlers_kept():  # ray.init's SIGTERM handler would abort the driver inside ray.wait
            ray.init(
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


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
