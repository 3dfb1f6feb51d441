"""Installs the shared library `accel` (lib/accel) and the two network packages.

`sh init.sh` runs `pip install -e .`, which also compiles the Cython utilities in place.
"""
import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def cython_extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("lib", "accel", "cython", "*.pyx"))):
        name = "accel.cython." + os.path.splitext(os.path.basename(pyx))[0]
        # OpenMP for the kernels that use prange (deform_cy); harmless for the others.
        exts.append(Extension(name, [pyx], include_dirs=[numpy.get_include()],
                              extra_compile_args=["-O3", "-fopenmp"],
                              extra_link_args=["-fopenmp"]))
    return cythonize(exts, language_level=3, quiet=True)


setup(
    name="accel-video-seg",
    version="0.1.0",
    description="Accel (CVPR 2019) video semantic segmentation, Python 3 port on MXNet",
    package_dir={"accel": "lib/accel", "deeplab": "deeplab", "dff_deeplab": "dff_deeplab"},
    packages=find_packages("lib") + ["deeplab", "dff_deeplab"],   # accel and every subpackage
    package_data={"accel.graphs": ["*.json"]},
    ext_modules=cython_extensions(),
    python_requires=">=3.8",
)
