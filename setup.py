"""Build hook: compiles the cffi syscall module (jailer._native) at install time."""
from setuptools import setup

setup(cffi_modules=["jailer/_native_build.py:ffibuilder", "jailer/_seccomp_build.py:ffibuilder",
                    "jailer/_seccomp_build.py:loadbuilder"])
