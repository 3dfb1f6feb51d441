"""Accel and Deep Feature Flow: network builder, end-to-end training, demo."""
