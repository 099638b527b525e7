"""Real cgroup v2: every RealTier check, plus io.max on a loop device, delegation to an
unprivileged user and the no-internal-processes rule. Runs in the guest that
``./scripts/vm-test tests/integration/cgroups/test_v2_tier.py`` boots; skipped on a host without
v2."""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import subprocess
import time

import pytest

import cgroups
from cgroups import CgroupError, Limits
from tests.integration.cgroups.realtier import PREFIX, M, RealTier, wait_for


def _v2() -> bool:
    try:
        return cgroups.detect() == "v2"
    except CgroupError:
        return False


pytestmark = [
    pytest.mark.vm, pytest.mark.root,
    pytest.mark.skipif(not _v2(), reason="needs a cgroup v2 host: run ./scripts/vm-test "
                                         "tests/integration/cgroups/test_v2_tier.py"),
]

USER = "cgtest"


@pytest.fixture
def loopdev(tmp_path):
    """A 64 MiB loop device backed by a file in tmp_path; detached at teardown."""
    with contextlib.suppress(FileNotFoundError):  # no kmod: the loop driver may be built in
        subprocess.run(["modprobe", "loop"], stderr=subprocess.DEVNULL)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(64 * M)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], check=True,
                         capture_output=True, text=True).stdout.strip()
    yield dev
    subprocess.run(["losetup", "--detach", dev], check=True)


@pytest.fixture
def unprivileged():
    """(uid, gid) of a real unprivileged user: created with useradd inside the throw-away guest
    (VMTEST_GUEST=1), otherwise an unused numeric id."""
    if os.environ.get("VMTEST_GUEST") == "1":
        try:
            pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh",
                            USER], check=True)
        entry = pwd.getpwnam(USER)
        return entry.pw_uid, entry.pw_gid
    return 64999, 64999


def dd_seconds(cg: cgroups.Cgroup, spawn, dev: str, mib: int) -> float:
    t0 = time.monotonic()
    p = spawn(cg, f"exec dd if=/dev/zero of={dev} bs=256k count={mib * 4} oflag=direct",
              stderr=subprocess.DEVNULL)
    assert p.wait(120) == 0
    return time.monotonic() - t0


class TestV2Tier(RealTier):
    def test_backend_is_v2(self, make_cg):
        cg = make_cg(Limits(memory_high=8 * M))
        assert cg.version == "v2" and cg.limits().memory_high == 8 * M

    def test_wait_for_oom_sleeps_while_other_memory_events_fire(self, make_cg, spawn):
        cg = make_cg(Limits(memory_high=8 * M))  # reclaim + throttling above 8M, never OOM
        spawn(cg, "exec dd if=/dev/zero of=/dev/null bs=32M count=1")
        assert wait_for(lambda: cg.events().get("high", 0) > 0, 30)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        assert cg.wait_for_oom(2) is False
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        busy = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        assert busy < 0.5, f"wait_for_oom spun: {busy:.2f} s of CPU in 2 s"

    def test_io_max_throttles_writes_to_a_loop_device(self, make_cg, spawn, loopdev):
        free = make_cg()
        fast = dd_seconds(free, spawn, loopdev, 2)
        majmin, values = cgroups.parse_io_max(f"{loopdev}:wbps=1M")
        slow_cg = make_cg(Limits(io_max={majmin: values}))
        assert slow_cg.limits().io_max[majmin]["wbps"] == M
        slow = dd_seconds(slow_cg, spawn, loopdev, 2)
        assert slow > 1.0 and slow > 2 * fast, f"2 MiB at 1 MiB/s took {slow:.2f} s " \
                                               f"(unthrottled {fast:.2f} s)"
        assert slow_cg.stats().io_write_bytes >= 2 * M

    def test_delegation_to_an_unprivileged_user(self, make_cg, spawn, unprivileged):
        uid, gid = unprivileged
        cg = make_cg(Limits(memory_max=64 * M, pids_max=50))
        cg.delegate(uid, gid)
        d = cg.path
        script = f"""
            set -e
            mkdir {d}/sub                              # create a sub-cgroup
            echo $$ > {d}/sub/cgroup.procs             # move itself into it
            echo +pids > {d}/cgroup.subtree_control    # hand pids down (it has left {d})
            echo 5 > {d}/sub/pids.max                  # limit its own sub-cgroup
            echo moved:$(cat /proc/self/cgroup)
            ! (echo max > {d}/pids.max) 2>/dev/null          && echo pids.max:denied
            ! (echo 1G > {d}/memory.max) 2>/dev/null         && echo memory.max:denied
            ! (echo $$ > {os.path.dirname(d)}/cgroup.procs) 2>/dev/null && echo escape:denied
        """
        p = spawn(cg, f"exec setpriv --reuid {uid} --regid {gid} --clear-groups sh -c '{script}'",
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        lines = out.decode().split()
        assert f"moved:0::/{os.path.relpath(d, cg.root)}/sub" in lines
        assert {"pids.max:denied", "memory.max:denied", "escape:denied"} <= set(lines)
        assert os.stat(f"{d}/sub").st_uid == uid
        lim = cg.limits()
        assert (lim.pids_max, lim.memory_max) == (50, 64 * M)  # unchanged

    def test_no_internal_processes_rule_gives_a_clear_error(self, make_cg, spawn):
        busy = make_cg()
        spawn(busy, "exec sleep 60")
        inside = cgroups.open_manager("child", parent=os.path.relpath(busy.path, busy.root))
        with pytest.raises(CgroupError, match=r"cannot enable the '(memory|pids)' controller "
                                              r"below .*: it has processes of its own"):
            inside.create(Limits(memory_max=16 * M, pids_max=5))
        assert not inside.exists()

    def test_controllers_are_handed_down_a_nested_name(self, make_cg, spawn):
        cg = make_cg(Limits(pids_max=3, memory_max=32 * M), name=f"{PREFIX}a/b/c")
        top = os.path.join(cg.root, os.path.relpath(cg.path, cg.root).split("/")[0])
        for level in (top, f"{top}/b"):
            assert {"memory", "pids"} <= set(open(f"{level}/cgroup.subtree_control").read()
                                             .split())
        spawn(cg, "sleep 60 & sleep 60 & sleep 60 & wait", stderr=subprocess.DEVNULL)
        assert wait_for(lambda: cg.events().get("pids_max", 0) > 0, 10)
        cg.delete()
        assert not os.path.exists(top)


def test_jailer_run_with_a_limit_from_a_busy_cgroup_without_systemd(make_cg, spawn, jenv):
    """The documented fallback on a v2 host without systemd (this guest: its init is not
    systemd): jailer does not move processes itself, so a limit needing a controller, from
    a cgroup that holds processes (jailer's own), fails in one line that names the cgroup
    and the fix, leaving nothing; without limits the start still gets its cgroup there."""
    from tests.conftest import JAILER

    assert not os.path.isdir("/run/systemd/system")  # the control: not a systemd host
    busy = make_cg()
    p = spawn(busy, f"exec {JAILER} run -m 16M busybox true", stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, env=jenv)
    out, err = p.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert p.returncode == 125 and len(lines) == 1, err
    assert "no-internal-processes" in lines[0] and f"{busy.path}/leaf" in lines[0], lines
    p = spawn(busy, f"exec {JAILER} run --level container busybox cat /proc/self/cgroup",
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=jenv)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and out.decode().split() == ["0::/"], err
    assert [e for e in os.listdir(busy.path) if os.path.isdir(f"{busy.path}/{e}")] == []
