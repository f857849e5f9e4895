"""Preflight: everything about a model spec that can be checked without weights, in the driver, before any
worker starts or run directory exists.

The selector and reducer are built from the spec's arguments with the strict config code (an unknown or
mistyped argument names the spec and the valid keys); the backbone class checks its own arguments and
checkpoint (`BackboneClass.preflight`); the hooks the selector and reducer declare are compared with the
hooks the backbone class offers, and a reducer whose merged tokens have no encoded row is refused on a backbone
that places tokens by grid position. The same construction serves the model half at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.backbones import BACKBONES
from harness.core.config import ConfigError, build
from harness.core.registry import Registry
from harness.methods.hooks import missing_hooks
from harness.methods.reduction import REDUCERS, StreamingReducer
from harness.methods.selection import SELECTORS

if TYPE_CHECKING:  # specs.py uses this module to drop invalid expanded combinations
    from harness.model.specs import Component, ModelSpec


class Incompatible(ConfigError):
    """Components that are each fine but cannot work together (a hook the backbone lacks, a merged token a grid
    backbone cannot place, a stream the reducer cannot take): what a spec grid leaves out instead of failing."""


def _where(spec: ModelSpec) -> str:
    return f"model {spec.name!r}"  # the spec loader prefixes its YAML file


def _build(registry: Registry, part: Component, spec: ModelSpec) -> Any:
    cls = registry.get(part.name)
    try:
        return build(cls, dict(part.args), where=f"{_where(spec)}: {registry.kind} {part.name!r}")
    except ConfigError:
        raise
    except ValueError as exc:  # a method's own argument check (__post_init__)
        raise ConfigError(f"{_where(spec)}: {exc}") from None


# hooks that re-run the vision tower at full resolution: their grids do not match a coarse encode (key clips)
FULL_RESOLUTION_HOOKS = frozenset({"vision_attention", "vision_features", "patch_features"})


def build_methods(spec: ModelSpec) -> tuple[Any, Any]:
    """The spec's frame selector and token reducer, built and checked against each other."""
    selector = _build(SELECTORS, spec.selector, spec)
    reducer = _build(REDUCERS, spec.reducer, spec)
    if selector.streaming and not isinstance(reducer, StreamingReducer):
        streams = [name for name in REDUCERS if issubclass(REDUCERS.get(name), StreamingReducer)]
        raise Incompatible(f"{_where(spec)}: selector {spec.selector.name!r} streams its frames, but reducer "
                          f"{spec.reducer.name!r} cannot reduce a stream; use one of: {', '.join(streams)}")
    if "coarse_encode" in selector.requires and (full := sorted(reducer.requires & FULL_RESOLUTION_HOOKS)):
        raise Incompatible(f"{_where(spec)}: selector {spec.selector.name!r} has its frames encoded coarse, but reducer "
                          f"{spec.reducer.name!r} reads the full-resolution encoder through {', '.join(full)}, whose "
                          "grid would not match; pair it with a reducer that reads only the encoded tokens")
    return selector, reducer


def check_combination(spec: ModelSpec) -> None:
    """Whether the spec's selector and reducer can run on its backbone class (arguments and hooks; no
    checkpoint lookup, so the spec listing can use it for specs whose weights are absent)."""
    selector, reducer = build_methods(spec)
    backbone = BACKBONES.get(spec.backbone.name)
    for kind, method, name in (("selector", selector, spec.selector.name), ("reducer", reducer, spec.reducer.name)):
        if missing := missing_hooks(method.requires, backbone.hooks):
            raise Incompatible(
                f"{_where(spec)}: {kind} {name!r} needs backbone hook(s) {', '.join(missing)}, which backbone "
                f"{spec.backbone.name!r} does not offer (it offers: {', '.join(sorted(backbone.hooks)) or 'none'})")
    if backbone.placement == "grid" and not reducer.emits_rows:
        placeable = [name for name in REDUCERS if REDUCERS.get(name).emits_rows]
        raise Incompatible(
            f"{_where(spec)}: reducer {spec.reducer.name!r} merges tokens without an encoded row to place them at, "
            f"and backbone {spec.backbone.name!r} places every visual token by its grid position (M-RoPE); "
            f"reducers it can take: {', '.join(placeable)}")


def check_spec(spec: ModelSpec) -> None:
    """check_combination plus what must be on disk: the backbone's checkpoint (offline: in the cache; the backbone
    also checks its own arguments) and the selector's encoder weights."""
    check_combination(spec)
    try:
        BACKBONES.get(spec.backbone.name).preflight(**spec.backbone.args)
        build_methods(spec)[0].preflight()
    except ConfigError as exc:
        raise ConfigError(f"{_where(spec)}: {exc}") from None
