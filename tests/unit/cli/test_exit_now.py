"""``main.exit_now``: the fast paths' exit, which skips the interpreter's tear-down, loses no
buffered output and keeps the exit status."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
BIG = 200_000  # more than any stream buffer


def _python(code: str, **kw) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter that imports jailer from this checkout."""
    kw.setdefault("stdout", subprocess.PIPE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered streams
    return subprocess.run([sys.executable, "-S", "-c",
                           f"import sys; sys.path.insert(0, {ROOT!r}); {code}"],
                          stderr=subprocess.PIPE, env=env, timeout=30, **kw)


def test_buffered_output_on_both_streams_arrives_and_the_status_is_kept():
    r = _python(f"from jailer.main import exit_now; sys.stdout.write('o' * {BIG} + 'END');"
                f"sys.stderr.write('e' * {BIG} + 'END'); exit_now(3)")
    assert r.returncode == 3
    assert r.stdout == b"o" * BIG + b"END"
    assert r.stderr == b"e" * BIG + b"END"


def test_control_a_bare_exit_loses_what_is_buffered():
    # the path the test above guards: _exit without the flush drops stdout's buffer
    r = _python("import os; sys.stdout.write('lost'); os._exit(3)")
    assert r.returncode == 3
    assert r.stdout == b""


def test_a_closed_pipe_on_stdout_is_status_120_as_for_pythons_own_exit():
    read, write = os.pipe()
    os.close(read)  # nobody reads: the flush fails with EPIPE (Python ignores SIGPIPE)
    try:
        r = _python("from jailer.main import exit_now; sys.stdout.write('x' * 100); exit_now(0)",
                    stdout=write)
    finally:
        os.close(write)
    assert r.returncode == 120, r.stderr
