"""Build of the optional C extension svdcodec.runtime._kernels (csrc/kernels.c).

pyproject.toml holds the package's metadata; this file only declares the extension, which is
optional: where it does not compile (no C compiler), setuptools warns and installs the pure
package, whose numpy paths give the same bytes and pixels.

Compiler flags: -O3 without -ffast-math, and -ffp-contract=off so that a * b + c is rounded
twice like numpy's two operations (no fused multiply-add): the kernels must give numpy's
float32 bits. -fno-trapping-math changes no value (it lets the compiler ignore floating-point
exception flags, which nothing reads) and lets the clamps of the colour and quantizer loops
vectorize. 32-bit x86 gets SSE2 arithmetic, as the x87 unit would round float32 sums with
extra precision.

Release builds carry no debug information (-g0 after Python's own -g: the same code, a third
of the file's size); `build_ext --debug` (pip's --config-settings or `python setup.py build_ext
--debug`) keeps it. tests/sanitize.sh compiles its own instrumented build with -g.
"""

from __future__ import annotations

import platform
import struct
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Per-compiler flags: GCC and Clang take the flags above; MSVC's /fp:precise neither
    contracts nor reassociates."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            args = ["/O2", "/fp:precise"]
        else:
            args = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-std=c11"]
            if not self.debug:
                args.append("-g0")
            if struct.calcsize("P") == 4 and platform.machine().lower() in (
                    "i386", "i486", "i586", "i686", "x86", "x86_64", "amd64"):
                args += ["-msse2", "-mfpmath=sse"]
        for extension in self.extensions:
            extension.extra_compile_args = args + list(extension.extra_compile_args)
        super().build_extensions()

    def build_extension(self, ext: Extension) -> None:
        """Say plainly when the optional kernels fail to build (setuptools then installs the
        numpy path; pip shows this with -v, and svdcodec warns on first use)."""
        try:
            super().build_extension(ext)
        except Exception:
            sys.stderr.write(f"\nWARNING: the C kernels ({ext.name}) did not compile; svdcodec "
                             "installs without them and runs its numpy path, 4-10 times "
                             "slower. Install a C compiler and the Python headers, then "
                             "reinstall past pip's cache of this build: pip install "
                             "--no-cache-dir --force-reinstall.\n\n")
            raise


setup(
    ext_modules=[Extension("svdcodec.runtime._kernels", ["csrc/kernels.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
