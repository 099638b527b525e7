"""The checks every real backend must pass, run by test_host_tier (this host: v1/hybrid) and
test_v2_tier (a cgroup-v2 guest). Each test makes its cgroups with ``make_cg`` and its
processes with ``spawn`` (see conftest), whose finalizers clean up even when a test fails."""

from __future__ import annotations

import os
import subprocess
import time

import cgroups
from cgroups import Limits

PREFIX = f"cgtest-{os.getpid()}-"  # every cgroup the cgroup tests make starts with this

M = 1 << 20


def wait_for(cond, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def cpu_seconds(cg: cgroups.Cgroup) -> float:
    return cg.stats().cpu_usage_usec / 1e6


class RealTier:
    def test_create_limit_add_stats_delete(self, make_cg, spawn):
        cg = make_cg(cgroups.limits_from_options(memory="64M", cpus="1", pids="64"))
        assert cg.exists()
        lim = cg.limits()
        assert (lim.memory_max, lim.cpu_quota, lim.cpu_period, lim.pids_max) == \
            (64 * M, 100000, 100000, 64)
        p = spawn(cg, "exec sleep 60")
        assert cg.procs() == [p.pid]
        st = cg.stats()
        assert st.pids_current == 1 and st.cpu_usage_usec >= 0
        assert st.memory_current is not None and st.oom_kill == 0
        cg.delete()
        assert not cg.exists()
        assert p.wait(10) == -9

    def test_memory_limit_oom_kills_and_is_reported(self, make_cg, spawn):
        cg = make_cg(Limits(memory_max=16 * M, memory_swap=16 * M))
        p = spawn(cg, "sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=64M count=1",
                  stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        assert cg.wait_for_oom(30)  # sleeps on the kernel's notification until dd is killed
        assert time.monotonic() - t0 < 20
        assert p.wait(60) == -9
        st = cg.stats()
        assert st.oom_kill >= 1
        assert 1 * M < st.memory_peak <= 16 * M

    def test_fork_bomb_stops_at_pids_max(self, make_cg, spawn):
        cg = make_cg(Limits(pids_max=20))
        # bounded: at most 500 sleeps; dash gives up at the first fork that fails
        p = spawn(cg, "i=0; while [ $i -lt 500 ]; do sleep 60 & i=$((i+1)); done; wait",
                  stderr=subprocess.DEVNULL)
        assert wait_for(lambda: cg.events().get("pids_max", 0) > 0)
        assert cg.stats().pids_current <= 20
        assert subprocess.run(["true"]).returncode == 0  # the host still forks
        cg.kill()
        assert cg.procs() == []
        p.wait(10)  # a zombie still counts in pids.current until reaped
        assert wait_for(lambda: cg.stats().pids_current == 0, 10)

    def test_cpu_quota_holds_busy_loop_near_half_a_core(self, make_cg, spawn):
        cg = make_cg(cgroups.limits_from_options(cpus="0.5"))
        spawn(cg, "while :; do :; done")
        time.sleep(0.3)
        c0, t0 = cpu_seconds(cg), time.monotonic()
        time.sleep(2)
        share = (cpu_seconds(cg) - c0) / (time.monotonic() - t0)
        assert 0.25 <= share <= 0.75, f"busy loop got {share:.2f} of a core with --cpus 0.5"

    def test_freeze_stops_progress_and_thaw_resumes(self, make_cg, spawn):
        cg = make_cg()
        spawn(cg, "while :; do :; done")
        time.sleep(0.2)
        cg.freeze()
        c0 = cpu_seconds(cg)
        time.sleep(0.5)
        assert cpu_seconds(cg) - c0 < 0.02
        cg.thaw()
        c0 = cpu_seconds(cg)
        time.sleep(0.5)
        assert cpu_seconds(cg) - c0 > 0.1

    def test_kill_stops_every_process(self, make_cg, spawn):
        cg = make_cg()
        p = spawn(cg, "sleep 60 & sleep 60 & (sleep 60 & wait) & wait")
        assert wait_for(lambda: len(cg.procs()) >= 5)
        cg.kill()
        assert cg.procs() == []
        assert p.wait(10) == -9

    def test_delete_with_lingering_processes(self, make_cg, spawn):
        cg = make_cg(Limits(pids_max=10))
        p = spawn(cg, "sleep 60 & exec sleep 60")
        assert wait_for(lambda: len(cg.procs()) == 2)
        cg.delete(timeout=10)
        assert not cg.exists()
        assert p.wait(10) == -9

    def test_update_limits_live(self, make_cg, spawn):
        cg = make_cg(Limits(pids_max=50, memory_max=64 * M))

        def forks() -> bool:  # the shell itself is one pid; /bin/true needs a second
            return spawn(cg, "/bin/true && echo forked", stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).communicate(timeout=30)[0] == b"forked\n"

        assert forks()
        cg.update(Limits(pids_max=1))
        assert not forks()
        cg.update(Limits(pids_max=10, memory_max=32 * M, cpu_quota=20000, cpu_period=100000))
        assert forks()
        lim = cg.limits()
        assert (lim.pids_max, lim.memory_max, lim.cpu_quota) == (10, 32 * M, 20000)

    def test_nested_name_and_exists(self, make_cg):
        cg = make_cg(Limits(pids_max=5), name=f"{PREFIX}nest/inner")
        assert cg.limits().pids_max == 5
        try:
            make_cg(name=f"{PREFIX}nest/inner")
            raise AssertionError("created twice")
        except cgroups.CgroupError as e:
            assert "already exists" in str(e)
        cg.delete()
        assert not cg.exists()
