"""A named jail through its whole life, with ``list --json`` checked at every step."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import pytest

from tests.conftest import JAILER
from tests.integration.jails.conftest import wait_for

pytestmark = pytest.mark.root


def _read_until(fd: int, needle: bytes, timeout: float = 10.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} not seen; got {buf[-500:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def console_session(env: dict, name: str, send: bytes, expect: bytes) -> bytes:
    """``jailer console NAME`` under a pty: type ``send``, wait for ``expect``, detach."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([JAILER, "console", name], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    try:
        _read_until(master, b"attached")
        os.write(master, send)
        out = _read_until(master, expect)
        os.write(master, b"\x1d")  # Ctrl-]
        out += _read_until(master, b"[detached]")
        assert proc.wait(10) == 0
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def memory_limit_inside(jl, name: str) -> int:
    r = jl("exec", name, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
           "2>/dev/null || cat /sys/fs/cgroup/memory.max", check=True)
    return int(r.stdout.split()[0])


@pytest.mark.vm
def test_whole_lifecycle(jl, listing, jail_env):
    jl("create", "life", "--image", "busybox", "--memory", "64M", "--hostname", "lifehost",
       "--", "/bin/sh", check=True)
    assert listing()["life"]["status"] == "stopped"
    assert listing()["life"]["pid"] == 0

    jl("start", "life", check=True)
    entry = listing()["life"]
    assert entry["status"] == "running" and entry["pid"] > 0
    assert entry["hostname"] == "lifehost"
    pid = entry["pid"]
    assert os.path.exists(f"/proc/{pid}")

    # exec joins every namespace: same hostname, same pid namespace (its pid 1 is the jail's)
    r = jl("exec", "life", "sh", "-c", "hostname; tr '\\0' ' ' </proc/1/cmdline; echo; id -u",
           check=True)
    host, cmdline, uid = r.stdout.split("\n")[:3]
    assert host == "lifehost" and cmdline.startswith("/bin/sh") and uid == "0"
    with open(f"/proc/{pid}/status") as f:
        host_uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
    assert host_uid >= 1_000_000_000  # the jail's own range, not host root
    assert jl("exec", "life", "sh", "-c", "exit 7").returncode == 7
    assert jl("exec", "life", "/nonexistent").returncode == 127
    assert listing()["life"]["status"] == "running"

    out = console_session(jail_env, "life", b"echo hi-$((6*7))\r", b"hi-42")
    assert b"hi-42" in out
    assert listing()["life"]["status"] == "running"  # detaching leaves the jail running

    logs = jl("logs", "life", check=True).stdout
    assert "hi-42" in logs

    assert memory_limit_inside(jl, "life") == 64 << 20
    jl("update", "life", "--memory", "32M", check=True)
    assert memory_limit_inside(jl, "life") == 32 << 20
    assert listing()["life"]["status"] == "running"

    jl("pause", "life", check=True)
    assert listing()["life"]["status"] == "paused"
    r = jl("exec", "life", "true")
    assert r.returncode != 0 and "paused" in r.stderr
    jl("resume", "life", check=True)
    assert listing()["life"]["status"] == "running"

    ps = jl("ps", "life", check=True).stdout
    assert "/bin/sh" in ps

    jl("stop", "--timeout", "1", "life", check=True)
    entry = listing()["life"]
    assert entry["status"] == "stopped" and entry["pid"] == 0
    assert entry["exit_code"] == 137  # an interactive sh ignores SIGTERM: killed after 1 s
    assert not os.path.exists(f"/proc/{pid}")

    # the definition keeps the update; a restart applies it
    jl("start", "life", check=True)
    assert memory_limit_inside(jl, "life") == 32 << 20
    r = jl("rm", "life")
    assert r.returncode == 1 and "running" in r.stderr
    jl("rm", "--force", "life", check=True)
    assert "life" not in listing()


def test_command_exit_and_restart_policy(jl, listing):
    jl("create", "once", "--image", "busybox", "--", "/bin/sh", "-c", "exit 3", check=True)
    jl("start", "once", check=True)
    wait_for(lambda: listing()["once"]["status"] == "stopped", what="jail to stop")
    assert listing()["once"]["exit_code"] == 3

    jl("create", "again", "--image", "busybox", "--restart", "on-failure", "--",
       "/bin/sh", "-c", "sleep 0.2; exit 1", check=True)
    jl("start", "again", check=True)
    wait_for(lambda: listing()["again"]["restarts"] >= 2, 20, "two restarts")
    jl("stop", "-t", "0", "again", check=True)
    assert listing()["again"]["status"] == "stopped"
    jl("rm", "once", "again", check=True)


def test_kill_sends_a_signal(jl, listing):
    jl("create", "sig", "--image", "busybox", "--", "/bin/sh", "-c",
       "trap 'exit 42' USR1; while :; do sleep 0.05; done", check=True)
    jl("start", "sig", check=True)
    time.sleep(0.2)  # let the shell install its trap
    jl("kill", "sig", "USR1", check=True)
    wait_for(lambda: listing()["sig"]["status"] == "stopped", what="jail to stop")
    assert listing()["sig"]["exit_code"] == 42
    r = jl("kill", "sig", "TERM")
    assert r.returncode == 1 and "not running" in r.stderr
    jl("rm", "sig", check=True)


def test_level_jail_without_cgroup(jl, listing):
    jl("create", "plain", "--image", "busybox", "--level", "jail", check=True)
    jl("start", "plain", check=True)
    assert listing()["plain"]["status"] == "running"
    r = jl("exec", "plain", "cat", "/proc/1/cmdline")
    assert r.returncode == 0 and r.stdout.startswith("/bin/sh")
    jl("rm", "-f", "plain", check=True)


def test_stop_is_idempotent_and_signals_by_name(jl, listing):
    jl("create", "idem", "--image", "busybox", "--init", "--", "sleep", "1000", check=True)
    jl("stop", "idem", check=True)  # not running: nothing to do
    jl("start", "idem", check=True)
    r = jl("start", "idem")
    assert r.returncode == 1 and "already running" in r.stderr
    jl("stop", "-t", "5", "idem", check=True)  # --init passes TERM on to sleep
    assert listing()["idem"]["exit_code"] == 143
    jl("rm", "idem", check=True)


def test_bad_signal_name(jl):
    jl("create", "badsig", "--image", "busybox", check=True)
    try:
        r = jl("kill", "badsig", "NOPE")
        assert r.returncode == 1 and "unknown signal" in r.stderr
    finally:
        jl("rm", "badsig", check=True)



def test_bad_names_and_duplicates_change_nothing(jl, listing, jail_root):
    before = sorted(p.name for p in (jail_root / "etc").rglob("*"))
    for name in ("a/b", "..", "../x", ".hidden", "-dash", "x" * 64, "sp ace", ""):
        r = jl("create", name, "--image", "busybox")
        assert r.returncode != 0, name
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert any(w in r.stderr for w in ("invalid jail name", "Missing argument",
                                           "No such option")), r.stderr
    r = jl("create", "ok", "--image", "nosuchimage")
    assert r.returncode != 0 and "nosuchimage" in r.stderr
    r = jl("create", "ok", "--image", "busybox", "--memory", "lots")
    assert r.returncode != 0 and "--memory" in r.stderr
    r = jl("create", "ok", "--image", "busybox", "--rootfs", "/tmp")
    assert r.returncode != 0
    assert sorted(p.name for p in (jail_root / "etc").rglob("*")) == before
    jl("create", "dup", "--image", "busybox", check=True)
    r = jl("create", "dup", "--image", "busybox")
    assert r.returncode != 0 and "exists already" in r.stderr
    for verb in ("start", "stop", "exec", "console", "logs", "pause", "update", "rm"):
        args = [verb, "nosuch"] + (["true"] if verb == "exec" else []) + \
            (["--memory", "1M"] if verb == "update" else [])
        r = jl(*args)
        assert r.returncode != 0 and ("does not exist" in r.stderr or "no such jail"
                                      in r.stderr), (verb, r.stderr)
    jl("rm", "dup", check=True)
    assert listing() == {}
