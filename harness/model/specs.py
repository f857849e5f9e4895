"""Runnable MODEL specs: a named backbone × frame selector × token reducer, each a name plus arguments.

The specs are data: the YAML files under `specs_dir()` (specs/, or `HARNESS_SPECS_DIR`), read with the strict
config code on the first use of MODELS, once per process. A file may hold three keys:

    specs:                                   # explicit entries
      - name: tiny-uniform
        description: tiny backbone, 16 uniform frames
        backbone: tiny                       # a component: a name, or {name: ..., <its arguments>}
        selector: {name: uniform, n: 16}
        reducer: none                        # the default
        answer: option_letter                # default: generate
    grid:                                    # one spec `<base>-<method>` per base × method
      bases: {<base>: {backbone: ..., answer: ..., vars: {n: 16}}}
      methods: {<method>: {description: ..., selector: {name: uniform, n: "{n}"}, reducer: ...}}
    aliases: {old-name: spec-name}           # another name for a spec, which MODELS.get returns

Files named `_*.yaml` are only `include:` bases. Budget mode's `tokens_per_frame` is not written: the loader takes
it from the backbone class. Every spec is checked against its backbone class (harness.model.preflight) as it is
loaded; an explicit entry that fails is an error, a grid pair that fails is left out.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.backbones import BACKBONES
from harness.core.config import ConfigError, build, load_yaml
from harness.core.paths import specs_dir
from harness.core.registry import Registry, UnknownNameError
from harness.model.preflight import Incompatible, build_methods, check_combination


@dataclass(frozen=True)
class Component:
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"{self.name}({args})"


# "generate": free text, parsed by the task's extractor. "option_letter": one greedy step restricted to the
# option letters (GenerationConfig.choices) — for random tiny checkpoints, which cannot follow the format.
Answer = Literal["generate", "option_letter"]
ANSWER_MODES: tuple[str, ...] = typing.get_args(Answer)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    backbone: Component
    selector: Component
    reducer: Component = Component("none")
    answer: Answer = "generate"

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_MODES:
            raise ValueError(f"model spec {self.name!r}: answer must be one of {ANSWER_MODES}, got {self.answer!r}")

    def hooks(self) -> str:
        """The backbone hooks the selector and reducer require, joined by "+" ("none" when they need none)."""
        selector, reducer = build_methods(self)
        return "+".join(sorted(selector.requires | reducer.requires)) or "none"


# ---- the YAML schema (harness.core.config.build checks keys and types against these)

ComponentYaml = str | dict[str, Any]  # `tiny`, or `{name: uniform, n: 16}`


@dataclass(frozen=True)
class SpecEntry:
    name: str
    description: str
    backbone: ComponentYaml
    selector: ComponentYaml
    reducer: ComponentYaml = "none"
    answer: Answer = "generate"


@dataclass(frozen=True)
class GridBase:
    backbone: ComponentYaml
    answer: Answer = "generate"
    vars: dict[str, Any] = field(default_factory=dict)  # what the methods' "{var}" placeholders stand for


@dataclass(frozen=True)
class GridMethod:
    description: str
    selector: ComponentYaml
    reducer: ComponentYaml = "none"


@dataclass(frozen=True)
class Grid:
    bases: dict[str, GridBase]
    methods: dict[str, GridMethod]


@dataclass(frozen=True)
class SpecFile:
    specs: tuple[SpecEntry, ...] = ()
    grid: Grid | None = None
    aliases: dict[str, str] = field(default_factory=dict)


# ---- loading


def load_specs(directory: Path) -> dict[str, ModelSpec]:
    """Every spec and alias the YAML files in `directory` define, by name (an alias maps to its spec)."""
    paths = [p for p in sorted(directory.glob("**/*.yaml")) if not p.name.startswith("_")]
    if not paths:
        raise ConfigError(f"{directory}: no model spec YAML files (HARNESS_SPECS_DIR names another directory)")
    defined: dict[str, Path] = {}  # every name → the file that defines it, to report duplicates
    specs: Registry[ModelSpec] = Registry("model")
    aliases: list[tuple[str, str, Path]] = []

    def claim(name: str, path: Path) -> None:
        if name in defined:
            raise ConfigError(f"{path}: model {name!r} is already defined in {defined[name]}")
        defined[name] = path

    for path in paths:
        file = build(SpecFile, load_yaml(path), where=str(path))
        for spec in _file_specs(file, path):
            claim(spec.name, path)
            specs.register(spec.name, spec)
        for alias, target in file.aliases.items():
            claim(alias, path)
            aliases.append((alias, target, path))
    named = {name: specs.get(name) for name in specs}
    for alias, target, path in aliases:
        try:
            named[alias] = specs.get(target)
        except UnknownNameError as exc:
            raise ConfigError(f"{path}: aliases.{alias}: {exc}") from None
    return named


def _file_specs(file: SpecFile, path: Path) -> Iterator[ModelSpec]:
    for entry in file.specs:
        yield resolve_entry(entry, path)
    if file.grid is not None:
        yield from _expand(file.grid, path)


def resolve_entry(entry: SpecEntry, path: Path) -> ModelSpec:
    """The ModelSpec an entry stands for, with budget mode's tokens per frame filled in, checked by the preflight."""
    where = f"model {entry.name!r}"
    try:
        backbone = _component(entry.backbone, f"{where}: backbone")
        selector = _budget_tokens(_component(entry.selector, f"{where}: selector"), backbone, where)
        spec = ModelSpec(entry.name, entry.description, backbone, selector,
                         _component(entry.reducer, f"{where}: reducer"), entry.answer)
        check_combination(spec)
    except UnknownNameError as exc:  # a misspelt component name
        raise ConfigError(f"{path}: {where}: {exc}") from None
    except ConfigError as exc:  # keeps its class: a grid leaves out only what is Incompatible
        raise type(exc)(f"{path}: {exc}") from None
    return spec


def _component(value: ComponentYaml, where: str) -> Component:
    if isinstance(value, str):
        return Component(value)
    args = dict(value)
    name = args.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{where}: a component mapping needs `name:` (a string), got {value!r}")
    return Component(name, args)


def _budget_tokens(selector: Component, backbone: Component, where: str) -> Component:
    """Budget mode counts tokens in the backbone's units, so its tokens per frame come from the backbone class
    (`tokens_per_frame_for`), never from a constant in a spec that would go stale when the backbone changes."""
    if selector.args.get("budget") is None:
        return selector
    if "tokens_per_frame" in selector.args:
        raise ConfigError(f"{where}: selector {selector.name!r}: remove tokens_per_frame; budget mode takes the "
                          f"backbone's")
    per_frame = BACKBONES.get(backbone.name).tokens_per_frame_for(**backbone.args)
    if per_frame is None:
        raise Incompatible(f"{where}: budget mode needs a fixed number of tokens per frame, and backbone {backbone} "
                          f"has none (they depend on the frame size); use n or fps instead of budget")
    return Component(selector.name, {**selector.args, "tokens_per_frame": per_frame})


def _expand(grid: Grid, path: Path) -> Iterator[ModelSpec]:
    """One spec per base × method. The grid is a product, so a pair whose components cannot work together is left
    out (ToMe on Qwen2.5-VL: `Incompatible`); any other error (a typo, a bad value) fails, and so does a base or
    method left with no spec at all."""
    made: set[tuple[str, str]] = set()
    rejected: dict[tuple[str, str], ConfigError] = {}
    for base_name, base in grid.bases.items():
        for method_name, method in grid.methods.items():
            where = f"{path}: grid.methods.{method_name} on base {base_name!r}"
            entry = SpecEntry(
                f"{base_name}-{method_name}", _fill(method.description, base.vars, f"{where}: description"),
                base.backbone, _fill(method.selector, base.vars, f"{where}: selector"),
                _fill(method.reducer, base.vars, f"{where}: reducer"), base.answer,
            )
            try:
                spec = resolve_entry(entry, path)
            except Incompatible as exc:
                rejected[base_name, method_name] = exc
                continue
            made.add((base_name, method_name))
            yield spec
    for axis, key, names in ((1, "methods", grid.methods), (0, "bases", grid.bases)):
        for name in names:
            if not any(pair[axis] == name for pair in made):
                first = next(exc for pair, exc in rejected.items() if pair[axis] == name)
                raise ConfigError(f"{path}: grid.{key}.{name} yields no spec ({first})")


_WHOLE_VAR = re.compile(r"\{(\w+)\}")


def _fill(value: Any, variables: dict[str, Any], where: str) -> Any:
    """A base's vars in a method's strings: "{var}" alone becomes the value itself (so `n: "{n}"` stays a number
    and a var can be a whole component); other strings are str.format-ted; mappings are filled value by value."""
    if isinstance(value, dict):
        return {k: _fill(v, variables, f"{where}.{k}") for k, v in value.items()}
    if not isinstance(value, str):
        return value
    try:
        whole = _WHOLE_VAR.fullmatch(value)
        return variables[whole[1]] if whole else value.format_map(variables)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot fill {value!r} from the base's vars {sorted(variables)} ({exc!r})") from None


class SpecRegistry(Registry[ModelSpec]):
    """The specs of `specs_dir()`, loaded on first use, once: later lookups never re-read the YAML."""

    def __init__(self) -> None:
        super().__init__("model")
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            for name, spec in load_specs(specs_dir()).items():
                self.register(name, spec)
            self._loaded = True

    def get(self, name: str) -> ModelSpec:
        self._load()
        return super().get(name)

    def names(self) -> list[str]:
        self._load()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._load()
        return super().__contains__(name)


MODELS: Registry[ModelSpec] = SpecRegistry()
