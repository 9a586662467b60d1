"""Build the Cython core (cext/) as extension modules of the child_process package."""

import os
import sys

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - build requirement
    sys.exit("Cython is required to build child_process (pip install Cython)")

extra_compile_args = ["-O2"]
define_macros = [("_GNU_SOURCE", "1")]
libraries = ["dl"] if sys.platform.startswith("linux") else []

modules = ["_spawn", "_loop_core", "_io", "_sync", "_wire", "_v8"]
extensions = [
    Extension(
        f"child_process.{name}",
        [os.path.join("cext", f"{name}.pyx")],
        include_dirs=["cext"],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        libraries=libraries,
    )
    for name in modules
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3", "embedsignature": True},
        quiet=True,
    ),
)
