"""cgroup limits through `jailer run` on this host's cgroups (hybrid v1 here; the v2 guest
tier runs the same file through scripts/vm-test)."""

from __future__ import annotations

import re
import time

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.vm]  # also run by the cgroup-v2 guest tier (scripts/vm-test -m vm)


def run(jailer, script: str, *opts: str, level: str = "container", timeout: float = 60):
    return jailer("run", "--level", level, *opts, "busybox", "/bin/sh", "-c", script,
                  timeout=timeout)


@pytest.mark.parametrize("level", ["jail", "container"])
def test_true_runs_under_a_1m_memory_limit(jailer, level):
    r = jailer("run", "--level", level, "--memory", "1M", "--stats", "busybox", "/bin/true")
    assert r.returncode == 0, r.stderr
    assert "OOM kills 0" in r.stderr


def test_memory_hog_is_oom_killed_and_reported(jailer):
    r = run(jailer, 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived',
            "--memory", "16M")
    assert r.returncode == 137
    assert "survived" not in r.stdout
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("jailer: the container was killed by the OOM killer")
    assert "memory limit 16.0 MiB" in line


def test_fork_bomb_stops_at_the_pids_limit(jailer):
    t0 = time.monotonic()
    r = run(jailer, "i=0; while [ $i -lt 300 ]; do sleep 5 & i=$((i+1)); done 2>/dev/null; "
            "echo forked=$(ls -d /proc/[0-9]* | wc -l)", "--pids", "32", "--init",
            "--timeout", "20")
    assert r.returncode in (0, 2)  # ash may exit on the failed fork
    if "forked=" in r.stdout:
        assert int(r.stdout.split("forked=")[1]) <= 32
    assert time.monotonic() - t0 < 20  # the host (and this test) kept working


def test_cpus_half_holds_a_busy_loop_near_half_a_core(jailer):
    r = run(jailer, "timeout 2 sh -c 'while :; do :; done'; true", "--cpus", "0.5", "--stats")
    assert r.returncode == 0, r.stderr
    cpu = float(re.search(r"cpu ([0-9.]+) s", r.stderr).group(1))
    assert 0.5 < cpu < 1.5, r.stderr  # 2 s of wall time at half a core; wide for noise


def test_inside_sees_only_its_own_cgroup_read_only(jailer):
    import cgroups

    v2 = cgroups.detect() == "v2"
    limit = "/sys/fs/cgroup/memory.max" if v2 else "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    r = run(jailer, f"cat /proc/self/cgroup; cat {limit}; echo 1 > {limit} || echo refused",
            "--memory", "64M")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "refused" in r.stdout and str(64 << 20) in lines
    cgroup_lines = [line for line in lines if line.count(":") >= 2]
    assert cgroup_lines and all(line.endswith(":/") for line in cgroup_lines)


@pytest.mark.parametrize("args,needle", [
    (["--memory", "lots"], "--memory 'lots'"),
    (["--cpus", "-1"], "--cpus"),
    (["--pids", "0"], "--pids"),
    (["--io-max", "/dev/nonexistent:rbps=1M"], "/dev/nonexistent"),
    (["--cpu-weight", "0"], "--cpu-weight"),
])
def test_bad_resource_options(jailer, args, needle):
    r = jailer("run", *args, "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
