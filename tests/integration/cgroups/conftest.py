"""Fixtures of the real cgroup tiers (host and v2): a cgroup factory and a process spawner whose
finalizers remove whatever a test made, and a leak check of the cgroups named PREFIX* (run with
the suite's own).

The fake cgroupfs of the unit tier is in tests/unit/cgroups/conftest.py."""

from __future__ import annotations

import os
import subprocess

import pytest

import cgroups
from tests.integration.cgroups.realtier import PREFIX


# ── real cgroups ─────────────────────────────────────────────────────────────────────────────
def our_cgroups() -> set[str]:
    """The cgroups named PREFIX* below our own cgroup, in every hierarchy."""
    probe = cgroups.open_manager(PREFIX + "probe")
    out = set()
    for d in probe.dirs:
        parent = os.path.dirname(d)
        out.update(f"{parent}/{e}" for e in os.listdir(parent) if e.startswith(PREFIX))
    return out


@pytest.fixture(autouse=True)
def no_cgroup_leaks(request):
    """On top of the suite's leak check (tests/conftest.py): a root test leaves no cgroup named
    PREFIX* behind, in any hierarchy (the suite's check sees only our own cgroup's children)."""
    if request.node.get_closest_marker("root") is None or os.geteuid() != 0:
        yield
        return
    before = our_cgroups()
    yield
    left = our_cgroups() - before
    assert not left, f"cgroups left behind: {sorted(left)}"


@pytest.fixture
def make_cg():
    """``make_cg(limits=None, name=None, **open_manager_kw)`` creates a cgroup below ours;
    every one is deleted at teardown, whatever the test did."""
    made: list[cgroups.Cgroup] = []

    def make(limits: cgroups.Limits | None = None, name: str | None = None,
             **kw) -> cgroups.Cgroup:
        cg = cgroups.open_manager(name or f"{PREFIX}{len(made)}", **kw)
        made.append(cg)
        return cg.create(limits)

    yield make
    errors = []
    for cg in reversed(made):
        try:
            cg.delete(timeout=10)
        except cgroups.CgroupError as e:
            errors.append(str(e))
    assert not errors, errors


@pytest.fixture
def spawn():
    """``spawn(cg, script)`` starts ``sh -c script`` inside ``cg``: the shell waits on stdin
    until it has been moved in. Leftover shells are killed and reaped at teardown."""
    procs: list[subprocess.Popen] = []

    def start(cg: cgroups.Cgroup, script: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["/bin/sh", "-c", "read _; " + script], stdin=subprocess.PIPE,
                             **kw)
        procs.append(p)
        cg.add(p.pid)
        p.stdin.write(b"go\n")
        p.stdin.close()
        p.stdin = None  # so that communicate() works
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
