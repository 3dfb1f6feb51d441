"""Accel: video semantic segmentation by corrective fusion (CVPR 2019), shared library."""
import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
