"""Build hook: compiles the cffi modules at install time (jailer.kernel._native from native.c,
jailer.policy._seccomp and _seccomp_load from seccomp_compile.c and seccomp_load.c)."""
from setuptools import setup

setup(cffi_modules=["jailer/kernel/_native_build.py:ffibuilder",
                    "jailer/policy/_seccomp_build.py:ffibuilder",
                    "jailer/policy/_seccomp_build.py:loadbuilder"])
