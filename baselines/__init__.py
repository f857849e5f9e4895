"""Comparison methods: one file per method, each registered in harness.selection or harness.reduction."""
