"""The status guards (pure logic: which verb each status allows, and the refusal each kind
gives) and the process helpers of kernel.proc on this test process."""

from __future__ import annotations

import os
import subprocess

import pytest

from jailer.core.errors import JailerError
from jailer.kernel import proc
from jailer.objects import status as S
from jailer.objects.status import CONTAINER, JAIL, Status

ST = {s: {"status": s.value, "pid": 42} for s in Status}


def refusal(guard, name: str, status: Status) -> str | None:
    try:
        guard.check(name, ST[status])
    except JailerError as e:
        assert e.exit_code == 1
        return str(e)
    return None


@pytest.mark.parametrize("guard, allowed", [
    (CONTAINER.start, {"created"}),
    (CONTAINER.kill, {"creating", "created", "running", "paused"}),
    (CONTAINER.pause, {"running"}),
    (CONTAINER.resume, {"paused"}),
    (CONTAINER.exec, {"created", "running"}),
    (CONTAINER.delete, {"creating", "stopped"}),
    (CONTAINER.kill_all, {s.value for s in Status}),
    (CONTAINER.ps, {s.value for s in Status}),
    (JAIL.start, {"created", "stopped"}),
    (JAIL.kill, {"running", "paused"}),
    (JAIL.kill_all, {"running", "paused"}),
    (JAIL.pause, {"running", "paused"}),
    (JAIL.resume, {"paused"}),
    (JAIL.exec, {"running"}),
    (JAIL.delete, {"created", "stopped"}),
    (JAIL.ps, {"running", "paused"}),
    (JAIL.stats, {"running", "paused"}),
])
def test_each_guard_allows_exactly_its_statuses(guard, allowed):
    assert {s.value for s in Status if guard.allows(s.value)} == allowed
    for s in Status:
        assert (refusal(guard, "x", s) is None) == (s.value in allowed)


def test_container_refusals_use_runcs_words():
    assert refusal(CONTAINER.start, "c1", Status.STOPPED) == \
        "cannot start a container that has stopped"
    assert refusal(CONTAINER.start, "c1", Status.RUNNING) == \
        "cannot start an already running container"
    assert refusal(CONTAINER.kill, "c1", Status.STOPPED) == "container not running"
    assert refusal(CONTAINER.pause, "c1", Status.PAUSED) == "container not running"
    assert refusal(CONTAINER.resume, "c1", Status.RUNNING) == "container not paused"
    assert refusal(CONTAINER.exec, "c1", Status.PAUSED) == "cannot exec in a paused container"
    assert refusal(CONTAINER.exec, "c1", Status.STOPPED) == \
        "cannot exec in a stopped container"
    assert refusal(CONTAINER.delete, "c1", Status.RUNNING) == \
        "cannot delete container c1 that is not stopped: running"
    assert refusal(CONTAINER.delete, "c1", Status.PAUSED) == \
        "cannot delete container c1 that is not stopped: paused"


def test_jail_refusals_name_the_jail():
    assert refusal(JAIL.start, "web", Status.RUNNING) == "jail web is already running (pid 42)"
    assert refusal(JAIL.kill, "web", Status.STOPPED) == \
        "cannot signal jail web: it is not running"
    assert refusal(JAIL.pause, "web", Status.STOPPED) == \
        "cannot pause jail web: it is not running"
    assert refusal(JAIL.resume, "web", Status.RUNNING) == \
        "cannot resume jail web: it is not paused"
    assert refusal(JAIL.exec, "web", Status.PAUSED) == \
        "cannot exec in jail web: it is paused (jailer resume web)"
    assert refusal(JAIL.exec, "web", Status.STOPPED) == \
        "cannot exec in jail web: it is not running"
    assert refusal(JAIL.delete, "web", Status.CREATING) == \
        "jail web is running: stop it first, or rm --force"
    assert refusal(JAIL.ps, "web", Status.STOPPED) == \
        "cannot list the processes of jail web: it is not running"
    assert refusal(JAIL.stats, "web", Status.STOPPED) == \
        "cannot read the stats of jail web: it is not running"


def test_no_cgroup_refusals():
    with pytest.raises(JailerError, match="container has no cgroup: cannot pause"):
        CONTAINER.pause.need_cgroup("c1", None)
    with pytest.raises(JailerError, match=r"jail web has no cgroup: no stats"):
        JAIL.stats.need_cgroup("web", None)
    with pytest.raises(JailerError, match=r"cannot update jail web while it runs"):
        JAIL.update.need_cgroup("web", None)
    assert CONTAINER.stats.need_cgroup("c1", None) is None  # a container's stats: {}
    marker = object()
    assert JAIL.pause.need_cgroup("web", marker) is marker


def test_unknown_status_counts_as_stopped():
    assert S.of({"status": "exploded"}) is Status.STOPPED
    assert S.of({}) is Status.STOPPED
    assert S.of({"status": "paused"}) is Status.PAUSED


def test_guards_need_every_verb():
    with pytest.raises(TypeError):
        S.Guards(start=S.Guard())


def test_process_helpers_on_ourselves():
    me = os.getpid()
    start = proc.start_time(me)
    assert start and start.isdigit()
    assert proc.alive(me, start, proc.boot_id())
    assert proc.alive(me, None, None)
    assert not proc.alive(me, str(int(start) + 1), None)  # another process of that pid
    assert not proc.alive(me, start, "another-boot")
    for bad in (0, -1, True, "1", None):
        assert not proc.alive(bad, None, None)
    assert proc.exists(me)
    assert not proc.kill(0, 0) and not proc.kill(-1, 0)  # never a group or everyone
    assert proc.cmdline(me)


def test_a_zombie_and_a_reaped_child_are_not_alive():
    child = subprocess.Popen(["true"])
    start = proc.start_time(child.pid)  # (a zombie's /proc/PID/stat still has it)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert not proc.alive(child.pid, start, None)
    assert proc.kill(child.pid, 0)  # a zombie can still be signalled
    proc.kill_and_reap(child.pid)
    child.returncode = 0
    assert not proc.kill(child.pid, 0) or proc.start_time(child.pid) != start
    proc.kill_and_reap(child.pid)  # reaped already: no error
