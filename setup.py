"""Build hook: compiles the cffi syscall module (jailer.kernel._native) at install time."""
from setuptools import setup

setup(cffi_modules=["jailer/kernel/_native_build.py:ffibuilder",
                    "jailer/policy/_seccomp_build.py:ffibuilder",
                    "jailer/policy/_seccomp_build.py:loadbuilder"])
