"""The Python API: ``run()`` and ``Jail``, with the same options as ``jailer run``."""

from __future__ import annotations

import os
import sys

from jailer.core import errors
from jailer.core.errors import JailerError
from jailer.engine.launcher import Launch, LaunchOptions, Result
from jailer.frontends import cliopts


class Jail:
    """A reusable container configuration; each ``run`` starts a fresh container.

    Keyword options are ``jailer run``'s long options with ``_`` for ``-``:
    level, hostname, env (list), workdir, user, bind (list of "SRC:DST[:ro]"),
    tmpfs (list), read_only, rlimit (list), timeout, init, keep, tty.
    """

    def __init__(self, rootfs: str, **options: object) -> None:
        known = {opt[1] for opt in cliopts.RUN_OPTIONS}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        self.rootfs = rootfs
        self.options = options

    def spec(self, cmd: list[str]):
        """The Spec of one run of ``cmd`` (raises JailerError for a bad option)."""
        opts = cliopts.defaults()
        opts.update(self.options)
        if "tty" not in self.options:
            opts["no_tty"] = True
        try:
            return cliopts.to_spec(self.rootfs, list(cmd), opts)
        except Exception as e:  # noqa: BLE001 - the API's error boundary
            raise _as_jailer_error(e) from None

    def run(self, cmd: list[str], *, capture_output: bool = False,
            input: bytes | None = None) -> Result:
        """Start, wait, and return the Result (returncode; stdout/stderr if captured).

        Raises JailerError when the container cannot be started.
        """
        spec = self.spec(cmd)
        cliopts.check_privileges(spec)
        fds = []
        stdin = 0
        if input is not None:
            stdin = os.memfd_create("jailer-stdin")
            os.write(stdin, input)
            os.lseek(stdin, 0, os.SEEK_SET)
            fds.append(stdin)
        out, err = (1, 2)
        if capture_output:
            out = os.memfd_create("jailer-stdout")
            err = os.memfd_create("jailer-stderr")
            fds += [out, err]
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            result = Launch(spec, LaunchOptions(stdio=(stdin, out, err))).run()
            if capture_output:
                result.stdout = _read_all(out)
                result.stderr = _read_all(err)
            return result
        except Exception as e:  # noqa: BLE001 - the API's error boundary
            raise _as_jailer_error(e) from None
        finally:
            for fd in fds:
                os.close(fd)


def run(rootfs: str, cmd: list[str], *, capture_output: bool = False,
        input: bytes | None = None, **options: object) -> Result:
    """Run ``cmd`` once in a new container at ``rootfs`` (a directory or image name)."""
    return Jail(rootfs, **options).run(cmd, capture_output=capture_output, input=input)


def _as_jailer_error(exc: Exception) -> Exception:
    """A library error or OSError as JailerError; anything else (a bug) unchanged."""
    return errors.convert(exc) or exc


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["Jail", "JailerError", "Result", "run"]
