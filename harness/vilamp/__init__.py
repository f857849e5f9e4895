"""ViLAMP (arXiv 2504.02438): differential keyframe selection (DKS), differential feature merging (DFM), the
ViLAMP sequence layout, the official-layout model and 10K-frame streaming. See notes/vilamp.md and README."""

from harness.vilamp.assembly import vilamp_visual_tokens

__all__ = ["vilamp_visual_tokens"]
