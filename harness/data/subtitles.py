"""Subtitles for a prompt, chosen by the timestamps of the frames the model actually sees.

Two published rules:
- VideoMME (`select: frames`): the subtitle lines whose span covers a sampled frame, in time order
  (Video-MME's eval: subtitles "for the sampled frames only").
- LongVideoBench (`select: interleaved`): times shifted by `starting_timestamp_for_subtitles`; a line is
  kept if some sampled frame lies inside its span, widened to ±0.5 s around its midpoint when shorter
  than 1 s, and placed by its midpoint (longvideobench_dataset.py).

The backbone takes the video as one block before the text, so interleaved lines keep their time order
relative to each other but all follow the frames.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.config import ConfigError
from harness.core.records import Sample
from harness.data.tasks import SubtitleSpec

_SRT_TIME = re.compile(r"(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})")
_TAG = re.compile(r"<[^>]+>")  # VideoMME wraps lines in <font color="white" size=".72c">…</font>
LVB_MIN_SPAN_S = 1.0  # shorter lines are widened to ±0.5 s around their midpoint (LongVideoBench loader)


@dataclass(frozen=True)
class Line:
    start_s: float
    end_s: float
    text: str

    @property
    def mid_s(self) -> float:
        return (self.start_s + self.end_s) / 2


def clock_seconds(value: str | float | int, where: str) -> float:
    """Seconds from "hh:mm:ss,mmm" / "hh:mm:ss.x" or a number."""
    if isinstance(value, int | float):
        return float(value)
    match = _SRT_TIME.fullmatch(value.strip())
    if not match:
        raise ConfigError(f"{where}: cannot parse time {value!r} (expected hh:mm:ss,mmm)")
    h, m, s, frac = match.groups()
    return int(h) * 3600 + int(m) * 60 + int(s) + int(frac) / 10 ** len(frac)


def parse_srt(text: str, where: str) -> list[Line]:
    lines = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        rows = [r for r in block.split("\n") if r.strip()]
        timing = next((i for i, r in enumerate(rows) if "-->" in r), None)
        if timing is None:
            continue
        start, _, end = rows[timing].partition("-->")
        body = " ".join(_TAG.sub("", r).strip() for r in rows[timing + 1 :]).strip()
        if body:
            lines.append(Line(clock_seconds(start, where), clock_seconds(end.split()[0], where), body))
    return lines


def parse_lvb_json(text: str, where: str) -> list[Line]:
    """LongVideoBench subtitle JSON: [{"timestamp": [s, e], "text"}] or [{"start", "end", "line"}]."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from exc
    lines = []
    for i, e in enumerate(entries):
        if "timestamp" in e:
            start, end = e["timestamp"]
            end = start if end is None else end  # the last whisper segment may have no end
            body = e.get("text", "")
        elif "start" in e:
            start, end, body = e["start"], e["end"], e.get("line", "")
        else:
            raise ConfigError(f"{where}: entry {i} has neither 'timestamp' nor 'start'")
        lines.append(Line(clock_seconds(start, where), clock_seconds(end, where), str(body).strip()))
    return lines


def load(path: str | Path, fmt: str) -> list[Line]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return parse_srt(text, str(path)) if fmt == "srt" else parse_lvb_json(text, str(path))


def covering_frames(lines: Sequence[Line], timestamps_s: Sequence[float]) -> list[Line]:
    """VideoMME: each line whose [start, end) holds a sampled frame, once, in time order (lmms-eval's rule)."""
    return [ln for ln in lines if any(ln.start_s <= t < ln.end_s for t in timestamps_s)]


def interleaved(lines: Sequence[Line], timestamps_s: Sequence[float], offset_s: float) -> list[Line]:
    """LongVideoBench: shift by the offset, widen short lines, keep those holding a frame, order by midpoint."""
    kept = []
    for ln in lines:
        start, end = ln.start_s - offset_s, ln.end_s - offset_s
        if end - start < LVB_MIN_SPAN_S:
            mid = (start + end) / 2
            start, end = mid - LVB_MIN_SPAN_S / 2, mid + LVB_MIN_SPAN_S / 2
        if any(start <= t <= end for t in timestamps_s):
            kept.append(Line(start, end, ln.text))
    return sorted(kept, key=lambda ln: ln.mid_s)


def for_prompt(spec: SubtitleSpec | None, sample: Sample, timestamps_s: Sequence[float]) -> str:
    """The `{subtitles}` text of one sample's prompt ("" when the task has none)."""
    if spec is None:
        return ""
    path = sample.meta.get("subtitle_file")
    if not path or not Path(path).is_file():
        return spec.missing
    lines = load(path, spec.format)
    if spec.select == "frames":
        chosen = covering_frames(lines, timestamps_s)
    else:
        chosen = interleaved(lines, timestamps_s, float(sample.meta.get("subtitle_offset_s", 0.0)))
    return "\n".join(ln.text for ln in chosen)
