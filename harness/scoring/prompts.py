"""Render a task's prompt profile for one sample."""

from __future__ import annotations

from harness.core.records import LETTERS, Prompt, Sample
from harness.data.tasks import PromptProfile


def render(profile: PromptProfile, sample: Sample, profile_name: str, subtitles: str = "") -> Prompt:
    """`subtitles` fills a `{subtitles}` placeholder (harness/data/subtitles.py picks them per sampled frames)."""
    options = profile.option_separator.join(
        profile.option_format.format(letter=LETTERS[i], text=text) for i, text in enumerate(sample.options)
    )
    return Prompt(
        system=profile.system,
        user=profile.user.format(question=sample.question, options=options, subtitles=subtitles),
        assistant_prefix=profile.assistant_prefix,
        profile=profile_name,
    )
