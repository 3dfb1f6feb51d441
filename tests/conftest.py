"""Imported by pytest before any test module: `accel` first, so that its OMP_NUM_THREADS
default applies before MXNet loads."""
import accel  # noqa: F401
