"""podman in its default configuration on a systemd host (cgroup_manager = "systemd", cgroup
v2) drives the runtime (`podman --runtime PATH`): each container is a transient
libpod-<id>.scope below machine.slice that the runtime asks systemd for, with podman's limits
as the scope's, and nothing of it is left after `podman rm`."""

from __future__ import annotations

import os
import time

import pytest

from tests.support.engines import IMAGE

from .conftest import CGROUP, own_cgroup, read, unit_gone, unit_properties, wait_for

pytestmark = [pytest.mark.root, pytest.mark.systemd]

SERVICE = 'trap "echo got TERM; exit 0" TERM; echo started; sleep 1000 & wait'
M = 1 << 20


def test_podman_default_is_systemd_on_v2(podman_session):
    r = podman_session("info", "--format", "{{.Host.CgroupManager}} {{.Host.CgroupsVersion}}")
    assert (r.returncode, r.stdout) == (0, "systemd v2\n"), r.stderr


def test_run(podman):
    mark = podman.runtime.mark()
    r = podman.run("--rm", IMAGE, "sh", "-c", "echo hello; cat /proc/self/cgroup; exit 3")
    # a cgroup namespace of its own (podman's default on v2): the scope is its root
    assert (r.returncode, r.stdout, r.stderr) == (3, "hello\n0::/\n", "")
    calls = podman.runtime.calls(mark)
    assert [podman.runtime.verb(c) for c in calls] == ["create", "start", "delete"]
    assert "--systemd-cgroup" in calls[0][:calls[0].index("create")], calls[0]


def test_lifecycle_in_a_scope(podman):
    """run -d with limits, exec, stats, pause/unpause, stop, rm: all through the scope."""
    name = podman.unique("life")
    try:
        lifecycle(podman, name)
    finally:
        podman("rm", "--force", "--time", "0", name)   # what a failed test left (else: none)


def lifecycle(podman, name: str) -> None:
    mark = podman.runtime.mark()
    r = podman.run("-d", "--name", name, "--memory", "64m", "--pids-limit", "32", IMAGE,
                   "sh", "-c", SERVICE)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    scope = f"libpod-{cid}.scope"
    cg = f"/machine.slice/{scope}"
    assert "started" in podman.wait_logs(name, "started")
    pid = int(podman.inspect(name, "{{.State.Pid}}"))
    assert own_cgroup(pid) == cg
    assert (read(f"{CGROUP}{cg}/memory.max"), read(f"{CGROUP}{cg}/pids.max")) == \
        (str(64 * M), "32")
    props = unit_properties(scope, "MemoryMax", "TasksMax", "Slice", "ActiveState")
    assert props == {"MemoryMax": str(64 * M), "TasksMax": "32", "Slice": "machine.slice",
                     "ActiveState": "active"}

    r = podman("exec", name, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    # an exec'd process joins the container's scope
    assert podman("exec", "-d", name, "sleep", "321").returncode == 0
    procs = read(f"{CGROUP}{cg}/cgroup.procs").split()
    cmdlines = {read(f"/proc/{p}/cmdline").replace("\0", " ").strip() for p in procs}
    assert "sleep 321" in cmdlines, cmdlines

    r = podman("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}", name)
    assert r.returncode == 0, r.stderr
    usage, pids = r.stdout.strip().split("|")
    assert usage.endswith("/ 67.11MB") and int(pids) >= 3, r.stdout

    assert podman("pause", name).returncode == 0
    assert podman.inspect(name, "{{.State.Status}}") == "paused"
    assert read(f"{CGROUP}{cg}/cgroup.freeze") == "1"
    assert "frozen 1" in read(f"{CGROUP}{cg}/cgroup.events").splitlines()
    assert podman("unpause", name).returncode == 0
    assert podman.inspect(name, "{{.State.Status}}") == "running"
    assert read(f"{CGROUP}{cg}/cgroup.freeze") == "0"
    assert podman("exec", name, "echo", "alive").stdout == "alive\n"

    started = time.monotonic()
    assert podman("stop", "--time", "20", name).returncode == 0
    assert time.monotonic() - started < 15, "SIGTERM did not reach the container's pid 1"
    assert podman.inspect(name, "{{.State.ExitCode}}") == "0"
    assert podman("logs", name).stdout == "started\ngot TERM\n"
    assert podman("rm", name).returncode == 0
    assert wait_for(lambda: unit_gone(scope)), unit_properties(scope, "ActiveState")
    assert wait_for(lambda: not os.path.exists(f"{CGROUP}{cg}")), f"{cg} is left"
    verbs = set(podman.runtime.verbs(mark))
    assert {"create", "start", "exec", "pause", "resume", "kill", "delete"} <= verbs, verbs


def test_memory_limit_oom(podman):
    script = ("cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/memory.swap.max;"
              " head -c 100m /dev/zero | tail; echo tail=$?")
    r = podman.run("--rm", "--memory", "32m", "--memory-swap", "32m", IMAGE, "sh", "-c", script)
    limit, swap, rest = (r.stdout.split("\n", 2) + ["", ""])[:3]
    assert (limit, swap) == (str(32 * M), "0"), (r.returncode, r.stdout, r.stderr)
    # the OOM killer takes tail, the biggest, and may take sh (pid 1) too
    assert (r.returncode, rest) in ((0, "tail=137\n"), (137, "")), (r.returncode, r.stdout)


def test_pids_limit(podman):
    script = ("cat /sys/fs/cgroup/pids.max;"
              " for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all forked")
    r = podman.run("--rm", "--pids-limit", "5", IMAGE, "sh", "-c", script)
    # sh and four sleeps fill the limit of 5: the fifth fork is refused
    assert r.stdout == "5\n" and "can't fork" in r.stderr and r.returncode != 0, \
        (r.returncode, r.stdout, r.stderr)
