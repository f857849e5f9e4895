"""Comparison methods: one file per method, each registered in harness.methods.selection or harness.methods.reduction."""
