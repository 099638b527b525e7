"""Crashes: kill -9 of the jail's command, of its monitor, and of a start half-way. ``list``
must show the truth at once, and ``gc`` (or the next start) must clean up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import JAILER, _cgroups
from tests.integration.jails.conftest import wait_for

pytestmark = pytest.mark.root


def _state(jail_root, name: str) -> dict:
    try:
        with open(jail_root / "run" / name / "state.json") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def _monitor_pid(st: dict) -> int:
    return int(st["monitor"].split(":")[1])


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_kill_9_of_the_command(jl, listing, jail_root):
    jl("create", "k1", "--image", "busybox", "--net", "bridge", check=True)
    jl("start", "k1", check=True)
    pid = listing()["k1"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: listing()["k1"]["status"] == "stopped", what="stopped in list")
    # the monitor saw it and cleaned up by itself: its link and cgroup go without gc
    wait_for(lambda: not _state(jail_root, "k1").get("pid"), what="clean-up")
    assert listing()["k1"]["exit_code"] == 137
    jl("rm", "k1", check=True)


def test_kill_9_of_the_monitor(jl, listing, jail_root):
    cgroups_before, links_before = _cgroups(), _links()
    jl("create", "k2", "--image", "busybox", "--net", "bridge", "--memory", "32M",
       check=True)
    jl("start", "k2", check=True)
    st = _state(jail_root, "k2")
    pid, monitor = st["pid"], _monitor_pid(st)
    assert _cgroups() - cgroups_before and _links() - links_before
    os.kill(monitor, signal.SIGKILL)
    # the jail dies with its monitor (parent-death signal): list tells at once, although
    # the state file still says running
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the jail to die")
    assert _state(jail_root, "k2")["status"] == "running"
    assert listing()["k2"]["status"] == "stopped"
    assert _cgroups() - cgroups_before, "nothing cleaned up yet: gc's job"
    out = jl("gc", check=True).stdout
    assert "k2" in out and "cgroup" in out
    assert _cgroups() == cgroups_before and _links() == links_before
    assert _state(jail_root, "k2")["status"] == "stopped"
    assert jl("gc", check=True).stdout == ""  # nothing left to do
    jl("rm", "k2", check=True)


def test_kill_9_of_a_start_half_way(jl, listing, jail_root, jail_env):
    """SIGKILL the runtime while it sets the jail up (state 'creating'): list says stopped,
    the next start cleans up and works."""
    cgroups_before = _cgroups()
    jl("create", "k3", "--image", "busybox", "--memory", "32M", check=True)
    hits = 0
    for _ in range(5):
        proc = subprocess.Popen([JAILER, "start", "k3"], env=jail_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st = wait_for(lambda: _state(jail_root, "k3").get("monitor")
                      and _state(jail_root, "k3"), what="the start to begin")
        if st.get("status") == "creating":
            hits += 1
        os.kill(_monitor_pid(st), signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode != 0 or st.get("status") != "creating"
        wait_for(lambda: listing()["k3"]["status"] == "stopped", what="stopped in list")
        time.sleep(0.05)
        r = jl("start", "k3")  # the next command cleans up what the dead start left
        assert r.returncode == 0, r.stderr
        assert listing()["k3"]["status"] == "running"
        jl("stop", "-t", "0", "k3", check=True)
        os.unlink(jail_root / "run" / "k3" / "state.json")
    assert hits, "never caught a start in the middle"
    assert _cgroups() == cgroups_before
    jl("rm", "k3", check=True)
