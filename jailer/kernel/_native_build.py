"""cffi build script for ``jailer.kernel._native``: compiles ``native.c`` (thin C shims over the
launcher's syscalls, and ``jl_final_exec``) against the declarations in ``native.h``.

Compiled once at ``pip install`` time (API mode), so a start never pays for parsing C
declarations. Every shim returns -1 with errno set on failure; ``jailer.kernel.syscalls`` turns that
into an ``OSError`` naming the call and its arguments.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "native.h"
SOURCE = HERE / "native.c"

ffibuilder = FFI()
ffibuilder.cdef(HEADER.read_text())
ffibuilder.set_source("jailer.kernel._native", SOURCE.read_text(), include_dirs=[str(HERE)],
                      depends=[str(HEADER), str(SOURCE)])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
