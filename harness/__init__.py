"""Evaluation harness for long-video language models: ViLAMP beside uniform sampling, token pruning and
keyframe selection, at matched cost."""
