"""Hugging Face plumbing shared by every stage that loads a transformers model (frame-selection encoders as
well as backbones): dtype/device/checkpoint resolution (`loading`), building cached checkpoints once and
atomically (`checkpoints`), and the tokenizer and chat-template pieces of the tiny checkpoints (`text`).

It may import only harness.core, so the selection stage can use it without importing a later stage.
"""
