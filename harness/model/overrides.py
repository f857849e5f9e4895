"""`--set component.key=value`: a named spec with some component arguments changed, checked like a spec file.

    selector.n=64  reducer.keep_ratio=0.25  backbone.dtype=float16  selector.name=topk  answer=option_letter

Values are YAML scalars (`64` an int, `0.25` a float, `true`, `null`, `[1, 2]`). The result is a new spec named
`<spec>@<assignments>` (its own run hash), resolved by the same code as a YAML entry: an unknown key names the
valid ones, a bad value or an impossible combination is one ConfigError line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.core.config import ConfigError
from harness.model.specs import ANSWER_MODES, ModelSpec, SpecEntry, resolve_entry

COMPONENTS = ("backbone", "selector", "reducer")


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """"selector.n=64" → ("selector", "n", 64); "answer=generate" → ("answer", "", "generate")."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected component.key=value, e.g. selector.n=32")
    part, _, arg = key.strip().partition(".")
    if part == "answer" and not arg:
        if raw.strip() not in ANSWER_MODES:
            raise ConfigError(f"--set {text!r}: answer must be one of {', '.join(ANSWER_MODES)}")
        return part, "", raw.strip()
    if part not in COMPONENTS or not arg:
        raise ConfigError(f"--set {text!r}: the key must be one of {', '.join(f'{c}.<argument>' for c in COMPONENTS)}"
                          " or answer")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not YAML ({exc.problem})") from None
    return part, arg, value


def apply_overrides(spec: ModelSpec, assignments: Sequence[str]) -> ModelSpec:
    """`spec` with `assignments` applied, resolved and checked as a spec file entry; `spec` when there are none."""
    if not assignments:
        return spec
    parts = {c: {"name": getattr(spec, c).name, **getattr(spec, c).args} for c in COMPONENTS}
    if parts["selector"].get("budget") is not None:  # filled from the backbone by the loader: computed again
        parts["selector"].pop("tokens_per_frame", None)
    answer = spec.answer
    for text in assignments:
        part, arg, value = parse_assignment(text)
        if part == "answer":
            answer = value
        elif arg == "name":  # another method: its own arguments, none of the old one's
            parts[part] = {"name": value}
        else:
            parts[part][arg] = value
    name = f"{spec.name}@{','.join(a.replace(' ', '') for a in assignments)}"
    entry = SpecEntry(name, f"{spec.description} [--set {' '.join(assignments)}]", parts["backbone"],
                      parts["selector"], parts["reducer"], answer)
    return resolve_entry(entry, Path("--set"))

