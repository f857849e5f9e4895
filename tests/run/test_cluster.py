"""A real multi-node Ray cluster on this machine: a head and two worker nodes, each its own raylet started by the
README's commands (`harness node`), the workers declaring 2 GPUs they do not have, so GPU scheduling is real. The
harness joins with --ray-address, places one model actor per GPU, survives the loss of a worker node mid-run and a
driver killed mid-run, and always ends with every sample journaled once and the uninterrupted run's summary."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from faults import SLOW_SPEC

from harness.core.config import ConfigError
from harness.core.paths import REPO_ROOT
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.evaluate import EvalRequest, evaluate, resolve
from harness.run.config import RunnerConfig
from harness.run.journal import read_journal

LIMIT = 20  # SLOW_SPEC samples: 0.5 s each, so 4 actors are busy for ~2 s after the first journal line


def readme_commands() -> list[str]:
    """The command lines of the README's "Running on a cluster" block, as a user would type them."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Running on a cluster"):]
    start = section.index("```sh\n") + len("```sh\n")
    block = section[start : section.index("```", start)]
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[1]


class Cluster:
    """The README's nodes, with the port made free and `python` this interpreter; each node its own session."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.env, self.logs = env, logs
        self.commands = [self.local(line) for line in readme_commands()]
        self.nodes: list[subprocess.Popen[bytes]] = []

    def local(self, line: str) -> list[str]:
        line = line.removesuffix("&").strip().replace("6379", str(self.port))
        words = line.split()
        return [sys.executable, *words[1:]] if words[0] == "python" else words

    @property
    def address(self) -> str:
        return f"127.0.0.2:{self.port}"

    def start_node(self, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"node{len(self.nodes)}.log").open("wb")
        node = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.nodes.append(node)
        return node

    def alive(self) -> int:
        out = subprocess.run([str(Path(sys.executable).with_name("ray")), "status", "--address", self.address],
                             env=self.env, capture_output=True, text=True, timeout=60).stdout
        active = out.split("Active:")[1].split("Pending:")[0] if "Active:" in out else ""
        return active.count("node_")

    def wait_for(self, nodes: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive() == nodes:
                return
            time.sleep(1)
        pytest.fail(f"{nodes} nodes never came up: {[p.read_text()[-2000:] for p in self.logs.glob('node*.log')]}")

    def kill(self, node: subprocess.Popen[bytes]) -> None:
        """A node lost: its `ray start`, raylet and workers (one process group) killed at once."""
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()

    def stop(self) -> None:
        for node in self.nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    specs = tmp_path_factory.mktemp("specs")
    (specs / "slow.yaml").write_text(SLOW_SPEC)
    (specs / "tiny.yaml").write_text((REPO_ROOT / "specs" / "tiny.yaml").read_text())
    load_samples(get_task("needle"), limit=LIMIT)  # the data exists before any subprocess runs
    # The head's GCS checks each raylet every second instead of every 3 s (Ray's default period): a killed node,
    # refusing connections, is declared dead after 5 failed checks in ~5 s instead of ~15 s. The 10 s timeout per
    # check stays, so a raylet that is alive but slow on busy cores is not.
    return {**os.environ, "HARNESS_SPECS_DIR": str(specs), "RAY_health_check_period_ms": "1000"}


@pytest.fixture(scope="module")
def cluster(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    cluster = Cluster(env, tmp_path_factory.mktemp("nodes"))
    nodes = [c for c in cluster.commands if c[1:4] == ["-m", "harness", "node"]]
    assert len(nodes) == 3 and "--head" in nodes[0]  # the README shows a head and two GPU worker nodes
    try:
        for argv in nodes:
            cluster.start_node(argv)
        cluster.wait_for(3)
        yield cluster
    finally:
        cluster.stop()


def harness_eval(cluster: Cluster, out: Path, *extra: str, placement: str = "gpu") -> list[str]:
    return [sys.executable, "-m", "harness", "eval", "--task", "needle", "--model", "slow", "--limit", str(LIMIT),
            "--no-wandb", "--out", str(out), "--ray-address", cluster.address, "--placement", placement,
            "--decode-workers", "1", *extra]


def finish(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def journal_lines(out: Path, n: int, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        for journal in out.glob("*/samples.jsonl"):
            if journal.read_text().count("\n") >= n:
                return journal
        time.sleep(0.02)
    pytest.fail(f"fewer than {n} journal lines before the run ended: {proc.communicate()}")


@pytest.fixture(scope="module")
def reference(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run's summary: the same samples on a local cluster, the model step free (the fixed-cost
    backbone's answer depends on the frames alone, so only the timings differ from the slow runs), one sample at
    a time (nor do the queue bounds change an answer)."""
    out = tmp_path_factory.mktemp("reference")
    finish([sys.executable, "-m", "harness", "eval", "--task", "needle", "--model", "slow", "--limit", str(LIMIT),
            "--set", "backbone.step_s=0", "--workers", "1", "--decode-workers", "1", "--model-queue", "1",
            "--max-in-flight", "1", "--no-wandb", "--out", str(out)], env)
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    asked = json.loads((run_dir / "config.json").read_text())["runner"]
    assert (asked["model_queue"], asked["max_in_flight"], summary["runner"]["peak_in_flight"]) == (1, 1, 1)
    return summary


@pytest.mark.slow  # four tiny LLaVA-OV actors loading: the README's own eval line; CI runs the node-loss test below
def test_the_readme_eval_runs_on_the_cluster(cluster: Cluster, tmp_path: Path):
    (line,) = [c for c in cluster.commands if c[1:4] == ["-m", "harness", "eval"]]
    assert "--ray-address" in line and "--placement" in line
    finish([*line, "--no-wandb", "--out", str(tmp_path)], cluster.env)
    (run_dir,) = tmp_path.iterdir()
    results = list(read_journal(run_dir / "samples.jsonl"))
    runner = json.loads((run_dir / "summary.json").read_text())["runner"]
    assert runner["nodes"] == 3 and runner["model_actors"] == 4  # one per declared GPU: 2 nodes × 2
    assert len({r.id for r in results}) == len(results) and all(r.status == "ok" for r in results)
    assert all(re.fullmatch(r"cpu CUDA_VISIBLE_DEVICES=[01]", r.worker_device) for r in results)


def same_metrics(summary: dict, reference: dict) -> None:
    """Every metric and breakdown of the uninterrupted run's summary, to the last digit."""
    assert summary["metrics"] == reference["metrics"]


def test_one_actor_per_gpu_and_a_lost_node_loses_no_sample(cluster: Cluster, reference: dict, tmp_path: Path):
    proc = subprocess.Popen(harness_eval(cluster, tmp_path), env=cluster.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    journal = journal_lines(tmp_path, 4, proc)
    before = [json.loads(line) for line in journal.read_text().splitlines()]
    victim = cluster.nodes[1]
    cluster.kill(victim)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    results = list(read_journal(journal))
    assert Counter(r.id for r in results) == Counter({s.id: 1 for s in load_samples(get_task("needle"), limit=LIMIT)})
    placements = {(r.worker_node, r.worker_device) for r in results}
    # before the loss: 2 worker nodes × their own GPUs 0 and 1, each GPU one actor (the head offers none)
    nodes = {node for node, _ in placements}
    assert len(nodes) == 2 and {(n, f"cpu CUDA_VISIBLE_DEVICES={g}") for n in nodes for g in "01"} >= {
        (r["worker_node"], r["worker_device"]) for r in before}
    summary = json.loads((journal.parent / "summary.json").read_text())
    runner = summary["runner"]
    (lost,) = runner["lost_nodes"]
    survivor = (nodes - {lost[:8]}).pop()
    assert lost[:8] in nodes and runner["retries"] >= 1 and runner["replaced_workers"] >= 1
    assert {r.worker_node for r in results[-8:]} == {survivor}  # the end of the run: the surviving node only
    same_metrics(summary, reference)


@pytest.mark.slow  # two more drivers; resuming a killed local run is tests/run/test_resume.py's, in CI
def test_a_killed_driver_is_finished_by_resume_from_another_process(cluster: Cluster, reference: dict,
                                                                     tmp_path: Path):
    one_actor = ("--workers", "1")  # the driver is what dies here: one model actor on a CPU will do
    proc = subprocess.Popen(harness_eval(cluster, tmp_path, *one_actor, placement="cpu"), env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = journal_lines(tmp_path, 4, proc)
    proc.kill()  # SIGKILL: no handler runs; Ray reclaims the driver's actors
    proc.communicate()
    done_before = len(list(read_journal(journal)))
    assert done_before < LIMIT
    finish(harness_eval(cluster, tmp_path, *one_actor, "--resume", str(journal.parent), placement="cpu"), cluster.env)
    results = list(read_journal(journal))
    assert sorted(r.id for r in results) == sorted(s.id for s in load_samples(get_task("needle"), limit=LIMIT))
    same_metrics(json.loads((journal.parent / "summary.json").read_text()), reference)


def test_gpu_placement_on_a_cluster_without_gpus_stops_in_one_line(tmp_path: Path):
    """On this process's local cluster (CPUs only): refused by `eval` before any run directory, in one line."""
    request = EvalRequest(task="needle", model="tiny-uniform", limit=2, out=str(tmp_path), wandb=False,
                          runner=RunnerConfig(workers=1, device="cuda", decode_in_model=True))
    with pytest.raises(ConfigError, match=r"^device 'cuda' places one model actor per GPU, but this machine's Ray "
                                          r"cluster has no GPU resource \(its resources: CPU=.*use --device cpu"):
        evaluate(request, resolve(request))
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="--device cuda needs GPU placement"):
        RunnerConfig(device="cuda", placement="cpu")
