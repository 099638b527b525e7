"""Hole 8, the exec side: a non-tty `jailer exec` relays stdio through pipes (as docker and
containerd do) instead of handing the exec'd process the caller's own fds, which the jail's
other processes could take with pidfd_getfd: the caller's terminal (TIOCSTI into the host
shell) or files."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest

from tests.conftest import JAILER

pytestmark = pytest.mark.root
SHOW = "for i in 0 1 2; do readlink /proc/self/fd/$i; done"


def _on_a_terminal(argv: list[str], env: dict) -> str:
    """Run argv with a fresh pty as its stdin, stdout and stderr; return what it printed."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the pty's last writer closed
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(30) == 0, out
        return out.decode(errors="replace").replace("\r", "")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_exec_from_a_terminal_gets_pipes_not_the_terminal(jl, jail_env):
    """`exec -T` from a terminal (without -T the jail's own pty is allocated)."""
    jl("create", "xstdio", "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("start", "xstdio", check=True)
    try:
        # the control: the same command given the terminal directly shows the terminal,
        # so the check below can tell the two apart
        direct = _on_a_terminal(["sh", "-c", SHOW], jail_env).split()
        assert all(t.startswith("/dev/pts/") for t in direct), direct
        inside = _on_a_terminal([JAILER, "exec", "-T", "xstdio", "sh", "-c", SHOW], jail_env)
        fds = inside.split()
        assert len(fds) == 3 and all(f.startswith("pipe:[") for f in fds), inside
    finally:
        jl("stop", "-t", "1", "xstdio", check=True)
        jl("rm", "xstdio", check=True)


def test_relayed_exec_keeps_data_status_and_does_not_wait_for_leftovers(jl):
    jl("create", "xrelay", "--image", "busybox", "--", "/bin/sleep", "300", check=True)
    jl("start", "xrelay", check=True)
    try:
        r = jl("exec", "xrelay", "sh", "-c", "cat; echo to-err >&2; seq 1 50000 | tail -1; "
               "exit 3", input="from-stdin\n", stdin=None)
        assert (r.returncode, r.stdout, r.stderr) == (3, "from-stdin\n50000\n", "to-err\n")
        # a background process keeps the pipes open: exec still returns when sh exits
        r = jl("exec", "xrelay", "sh", "-c", "sleep 60 & echo started", timeout=20)
        assert r.returncode == 0 and r.stdout == "started\n"
    finally:
        jl("stop", "-t", "1", "xrelay", check=True)
        jl("rm", "xrelay", check=True)
