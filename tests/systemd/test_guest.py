"""The guest is the host the tier claims: systemd as PID 1 with its system bus, cgroup v2 as
the only hierarchy, and these tests in a busy service cgroup (the no-internal-processes rule
applies to it, as it does to a login session or a service on a real host)."""

from __future__ import annotations

import errno
import os

import pytest

from tests.support.engines import sh

from .conftest import CGROUP, SERVICE, own_cgroup, read

pytestmark = [pytest.mark.root, pytest.mark.systemd]


def test_pid1_is_systemd():
    assert read("/proc/1/comm") == "systemd"
    version = sh("systemctl", "--version").stdout.split()
    assert version[:1] == ["systemd"] and int(version[1]) >= 252, version[:3]
    assert sh("systemctl", "is-active", "dbus.service").stdout.strip() == "active"
    assert os.path.exists("/run/dbus/system_bus_socket")


def test_cgroup2_is_the_only_hierarchy():
    with open("/proc/self/mounts") as f:
        kinds = {(line.split()[1], line.split()[2]) for line in f
                 if line.split()[2] in ("cgroup", "cgroup2")}
    assert kinds == {(CGROUP, "cgroup2")}
    with open("/proc/self/cgroup") as f:
        assert [line.split(":")[:2] for line in f] == [["0", ""]]
    assert {"memory", "pids", "cpu", "io"} <= set(read(f"{CGROUP}/cgroup.controllers").split())


def test_tests_run_in_a_busy_service_cgroup():
    me = own_cgroup()
    assert me == f"/system.slice/{SERVICE}"
    procs = read(f"{CGROUP}{me}/cgroup.procs").split()
    assert str(os.getpid()) in procs and len(procs) > 1, procs
    # a cgroup with processes cannot enable domain controllers (memory) for children
    assert "memory" in read(f"{CGROUP}{me}/cgroup.controllers").split()
    try:
        with open(f"{CGROUP}{me}/cgroup.subtree_control", "w") as f:
            f.write("+memory")
    except OSError as e:
        assert e.errno == errno.EBUSY
    else:
        with open(f"{CGROUP}{me}/cgroup.subtree_control", "w") as f:
            f.write("-memory")
        pytest.fail(f"enabled a controller in {me}, which holds processes")
    assert os.environ.get("VMTEST_GUEST") == "1"
