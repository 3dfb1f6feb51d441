"""Inference runtimes."""
