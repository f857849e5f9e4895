"""Task specs: one YAML per benchmark under tasks/, resolved into a frozen `TaskSpec`; suites of tasks.

Files whose name starts with `_` are templates for `include:` and are not tasks themselves. A file with a
`suite:` key instead of `task:` names several tasks run as one (`SuiteSpec`: `--task long4`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.core.config import ConfigError, build, load_yaml
from harness.core.paths import tasks_dir
from harness.core.records import GenerationConfig
from harness.core.registry import Registry


@dataclass(frozen=True)
class HubSpec:
    """Where `harness prepare` downloads a published benchmark from (Hugging Face dataset repos)."""

    repos: tuple[str, ...]  # accepted names, tried in order (lmms-eval/… moved from lmms-lab/… in 2026)
    allow_patterns: tuple[str, ...] = ()  # files to fetch; empty: the whole repo
    unpack: tuple[str, ...] = ()  # globs of archives to extract into the root: *.zip, or split tars "x.tar.part.*"
    gated: bool = False  # terms must be accepted on the hub and a token present


@dataclass(frozen=True)
class DatasetSpec:
    files: tuple[str, ...]  # annotation files relative to the data root (parquet, json or jsonl)
    split: str = "train"  # the split name `datasets` gives the loaded files
    root: str = ""  # default data root; "{cache}" expands to the harness cache dir
    generator: str | None = None  # "module:function(root, **generator_args)" that creates the data
    generator_args: dict[str, object] = field(default_factory=dict)
    adapter: str | None = None  # harness.data.adapters name: normalises one published row form before `fields`
    published_rows: int | None = None  # row count of the file as published; `verify` reports a mismatch
    hub: HubSpec | None = None


@dataclass(frozen=True)
class FieldMap:
    """Which column of a dataset row fills which field of the canonical `Sample`."""

    id: str
    video: str
    question: str
    options: str
    answer: str | None = None  # None: an unlabelled split
    answer_format: Literal["letter", "index", "text"] = "letter"
    strip_option_prefix: bool = False  # options arrive as "A. text"
    video_id: str | None = None  # defaults to the video column
    duration: str | None = None
    evidence_spans: str | None = None  # column of [start_s, end_s] pairs (needle tasks)
    keep: tuple[str, ...] = ()  # extra columns copied into Sample.meta


@dataclass(frozen=True)
class PromptProfile:
    user: str = "{question}\n{options}"  # placeholders: {question}, {options}
    system: str = ""
    option_format: str = "{letter}. {text}"
    option_separator: str = "\n"
    assistant_prefix: str = ""


@dataclass(frozen=True)
class MetricSpec:
    name: Literal["accuracy", "mavg"] = "accuracy"  # mavg: unweighted mean of per-group accuracy (MLVU M-Avg)
    breakdown: tuple[str, ...] = ()  # row columns reported separately; also copied into Sample.breakdown
    # questions on one video are correlated: the standard error clusters by this SampleResult field
    cluster_key: Literal["video_id", "id"] = "video_id"
    macro_over: str | None = None  # the breakdown column `mavg` averages over
    submission: Literal["id", "video_id"] | None = None  # write submission.json {key: predicted index}


@dataclass(frozen=True)
class SubtitleSpec:
    """Subtitles offered to prompts as `{subtitles}`, chosen by the sampled frames' timestamps."""

    path: str  # like video_path: "{root}/subtitle/{videoID}.srt"
    format: Literal["srt", "lvb_json"] = "srt"
    select: Literal["frames", "interleaved"] = "frames"  # VideoMME rule / LongVideoBench rule (data/subtitles.py)
    offset: str | None = None  # column of seconds subtracted from subtitle times
    missing: str = "No subtitles available"  # text when the video has no subtitle file (lmms-eval VideoMME)


@dataclass(frozen=True)
class TaskSpec:
    task: str
    dataset: DatasetSpec
    fields: FieldMap
    prompts: dict[str, PromptProfile]
    default_prompt: str
    description: str = ""
    version: int = 1
    video_path: str = "{root}/{video}"  # placeholders: {root} and any row column
    video_path_fallbacks: tuple[str, ...] = ()  # tried in order when video_path does not exist
    subtitles: SubtitleSpec | None = None
    extractor: str = "mcq_letter"  # harness.scoring.extract; "lmms-eval" = lmms_eval_extractor
    lmms_eval_extractor: str | None = None  # the task's lmms-eval-compatible extractor, for parity runs
    video_backend: Literal["auto", "decord", "pyav"] = "auto"  # harness.video.reader: probing and decoding
    metric: MetricSpec = MetricSpec()
    generation: GenerationConfig = GenerationConfig()
    source: str = ""  # the YAML file it came from

    def prompt(self, profile: str | None = None) -> PromptProfile:
        name = profile or self.default_prompt
        if name not in self.prompts:
            raise ConfigError(f"task {self.task}: unknown prompt profile {name!r}; valid: {sorted(self.prompts)}")
        return self.prompts[name]


def load_task_file(path: Path) -> TaskSpec:
    data = load_yaml(path)
    data["source"] = str(path)
    spec = build(TaskSpec, data, where=str(path))
    if spec.default_prompt not in spec.prompts:
        raise ConfigError(f"{path}: default_prompt {spec.default_prompt!r} is not among prompts {sorted(spec.prompts)}")
    if spec.metric.name == "mavg" and spec.metric.macro_over not in spec.metric.breakdown:
        raise ConfigError(f"{path}: metric.macro_over must name one of metric.breakdown {list(spec.metric.breakdown)}")
    return spec


@dataclass(frozen=True)
class SuiteSpec:
    """Tasks run as one: one cluster, one queue across them, one run directory per task (`harness.suite`)."""

    suite: str
    tasks: tuple[str, ...]
    description: str = ""
    source: str = ""


# The last discovery per tasks directory (resolved), with the (path, mtime, size) of every YAML under it then:
# a run calls `get_task` several times, and tests point HARNESS_TASKS_DIR at temp dirs they then edit.
_DISCOVERED: dict[Path, tuple[tuple[tuple[str, int, int], ...], Registry[Path], Registry[SuiteSpec]]] = {}


def _scan(directory: Path | None) -> tuple[Registry[Path], Registry[SuiteSpec]]:
    """Every task YAML (by its `task:` name) and suite (by its `suite:` name) under `directory`; parse errors are
    raised, never hidden. Rescanned only when a YAML under the directory was added, removed or changed."""
    directory = directory or tasks_dir()
    paths = sorted(directory.glob("**/*.yaml"))
    stamp = tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size) for p in paths)
    cached = _DISCOVERED.get(directory.resolve())
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    tasks: Registry[Path] = Registry("task")
    suites: Registry[SuiteSpec] = Registry("suite")
    for path in paths:
        if path.name.startswith("_"):
            continue
        data = load_yaml(path)
        if "suite" in data:
            suites.register(str(data["suite"]), build(SuiteSpec, {**data, "source": str(path)}, where=str(path)))
            continue
        name = data.get("task")
        if not isinstance(name, str):
            raise ConfigError(f"{path}: missing the `task:` name (or `suite:` with its `tasks:`)")
        tasks.register(name, path)
    _DISCOVERED[directory.resolve()] = (stamp, tasks, suites)
    return tasks, suites


def discover(directory: Path | None = None) -> Registry[Path]:
    """Every task YAML under `directory`, keyed by its `task:` name."""
    return _scan(directory)[0]


def discover_suites(directory: Path | None = None) -> Registry[SuiteSpec]:
    """Every suite under `directory`, keyed by its `suite:` name."""
    return _scan(directory)[1]


def get_task(name: str, directory: Path | None = None) -> TaskSpec:
    return load_task_file(discover(directory).get(name))


def task_names(selection: str, directory: Path | None = None) -> tuple[str, ...]:
    """The tasks `--task` names: a task, a suite, or a comma-separated list of either (in order, no repeats); an
    unknown name is one ConfigError naming the valid tasks and suites."""
    tasks, suites = _scan(directory)
    names: list[str] = []
    for part in (p.strip() for p in selection.split(",")):
        if part in suites:
            found = suites.get(part).tasks
        elif part in tasks:
            found = (part,)
        else:
            raise ConfigError(f"unknown task or suite {part!r}; tasks: {', '.join(tasks)}; "
                              f"suites: {', '.join(suites) or 'none'}")
        names += [n for n in found if n not in names]
    for name in names:
        tasks.get(name)  # a suite naming a missing task fails here, with the valid names
    return tuple(names)
