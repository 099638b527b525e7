"""Host processes: a ``sleep`` the test starts on the host must be invisible from inside, and
neither signals nor ptrace can reach it, by name or by its host pid number; the host's pid 1
is not the container's pid 1.

At chroot level (same pid namespace, real root) the test's own sleeper can be signalled,
traced and killed -- nothing else on the host is ever targeted.
"""

from __future__ import annotations

import errno as E
import time

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied, assert_succeeded

pytestmark = pytest.mark.root


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_host_processes_are_invisible_and_unreachable(attack, level, sleeper):
    pid = sleeper.pid
    out = attack(level, f"""
        try ps ps -o pid,args
        try count sh -c 'ls -d /proc/[0-9]* | wc -l'
        try proc_dir ls -d /proc/{pid}
        try kill0 kill -0 {pid}
        try kill9 kill -9 {pid}
        try ptrace_host {ATTACK} ptrace {pid}
        try init cat /proc/1/cmdline
    """)
    assert f"sleep {sleeper.token}" not in out["ps"].text
    assert int(out["count"].text) <= 8, out["count"]
    assert_denied(out, "proc_dir", E.ENOENT)
    assert_denied(out, "kill0", E.ESRCH)
    assert_denied(out, "kill9", E.ESRCH)
    assert_denied(out, "ptrace_host", E.ESRCH)
    with open("/proc/1/cmdline") as f:
        host_init = f.read().replace("\0", " ").strip()
    assert out["init"].text.replace("\0", " ").strip() != host_init
    assert sleeper.alive()


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("init", [False, True], ids=["shell-pid1", "init-pid1"])
def test_ptrace_of_pid_1_stays_inside(attack, level, init):
    """Attaching to the container's own pid 1 (same uid: allowed without CAP_SYS_PTRACE)
    reaches only a process of the container: its root and namespaces are the attacker's."""
    opts = ("--init",) if init else ()
    out = attack(level, f"""
        try ptrace1 {ATTACK} ptrace 1
        try root1 readlink /proc/1/root
        try same_ns sh -c '[ "$(readlink /proc/1/ns/pid)" = "$(readlink /proc/self/ns/pid)" ]'
    """, *opts)
    assert out["ptrace1"].errno in (0, E.EPERM), out["ptrace1"]
    assert out["root1"].text == "/"
    assert_succeeded(out, "same_ns")


def test_chroot_level_signals_and_traces_the_test_sleeper(attack, sleeper):
    """No pid namespace at chroot level: the host pid is reachable (and only ours is used)."""
    pid = sleeper.pid
    out = attack("chroot", f"""
        try kill0 kill -0 {pid}
        try ptrace {ATTACK} ptrace {pid}
        try term kill -TERM {pid}
    """, ignore=("pids",))
    for label in ("kill0", "ptrace", "term"):
        assert_succeeded(out, label)
    deadline = time.monotonic() + 5
    while sleeper.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sleeper.alive()
