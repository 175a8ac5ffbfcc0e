"""Build fastconv's one extension: the Cython boundary plus the C core.

The flags are portable on purpose (no host-specific -march flag): a wheel built here must run on any
x86-64 or ARM CPU. Instruction-set-specific kernels are chosen at run time instead.
"""
import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

C_SOURCES = [
    "fastconv/csrc/conv.c",
    "fastconv/csrc/gemm.c",
    "fastconv/csrc/engine.c",
    "fastconv/csrc/dispatch.c",
    "fastconv/csrc/pool.c",
    "fastconv/csrc/elementwise.c",
]

if sys.platform == "win32":
    compile_args = ["/O2", "/openmp"]
    link_args = []
else:
    # No memcpy/memset calls for the short copies of packing: inline loops are faster there.
    compile_args = ["-O3", "-std=c11", "-fopenmp", "-fno-math-errno",
                    "-fno-tree-loop-distribute-patterns"]
    link_args = ["-fopenmp"]
    if os.environ.get("FASTCONV_SANITIZE"):   # tools/sanitized_tests.sh: checked, slow build
        compile_args = [arg for arg in compile_args if arg != "-O3"] + [
            "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
        link_args += ["-fsanitize=address,undefined"]

extension = Extension(
    "fastconv._core",
    sources=["fastconv/_core.pyx", *C_SOURCES],
    # The templates and headers the sources include: editing one rebuilds the extension.
    depends=sorted(glob.glob("fastconv/csrc/*.h") + glob.glob("fastconv/csrc/*.template.c")),
    include_dirs=[numpy.get_include(), "fastconv/csrc"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(ext_modules=cythonize([extension], language_level=3))
