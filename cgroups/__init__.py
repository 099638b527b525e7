"""cgroups: a standalone cgroup library with one interface over cgroup v2 (unified, the primary
target) and cgroup v1 (also the v1 controllers of a v1/v2 hybrid host). Independent of jailer.

    import cgroups
    lim = cgroups.limits_from_options(memory="64M", cpus="0.5", pids="128")
    with cgroups.open_manager("jailer/c1").create(lim) as cg:   # deleted on exit
        cg.add(pid)                  # or write 0 to each of cg.procs_paths just before exec
        ...
        print(cg.stats().memory_peak, cg.stats().oom_kill)

Device control: ``Limits(devices=[*rules, *cgroups.DEFAULT_DEVICES])`` makes the cgroup deny
every device except those the rules allow (v1: the devices controller; v2: an eBPF program).

Cgroups are created only below the cgroup the calling process is in (per hierarchy), unless a
``parent`` is given. Only the backend in use is imported.
"""

from __future__ import annotations

import os

from .base import UNLIMITED, Cgroup, CgroupError, Limits, Stats
from .devices import DEFAULT_DEVICES, DeviceRule, parse_rule
from .parse import (
    limits_from_options,
    parse_cpus,
    parse_cpuset,
    parse_io_max,
    parse_pids,
    parse_size,
    parse_weight,
)

__all__ = ["DEFAULT_DEVICES", "UNLIMITED", "Cgroup", "CgroupError", "DeviceRule", "Limits",
           "Stats", "create", "detect", "parse_rule",
           "limits_from_options", "open_manager", "parse_cpus", "parse_cpuset", "parse_io_max",
           "parse_pids", "parse_size", "parse_weight"]

_V1_PROBES = ("memory", "cpu", "pids", "cpuset", "blkio", "freezer", "cpuacct")


def detect(root: str = "/sys/fs/cgroup") -> str:
    """How cgroups are mounted at ``root``: "v2" (unified), "hybrid" (v1 controller hierarchies
    plus a cgroup2 mount at ``root``/unified) or "v1"."""
    if os.path.exists(f"{root}/cgroup.controllers"):
        return "v2"
    v1 = any(os.path.exists(f"{root}/{c}/cgroup.procs") for c in _V1_PROBES)
    if v1:
        return "hybrid" if os.path.exists(f"{root}/unified/cgroup.controllers") else "v1"
    raise CgroupError(f"cgroups: no cgroup filesystem at {root} (mount one: mount -t cgroup2 "
                      f"cgroup2 {root})")


def open_manager(name: str, *, root: str = "/sys/fs/cgroup", version: str | None = None,
                 parent: str | None = None, proc_cgroup: str = "/proc/self/cgroup") -> Cgroup:
    """A handle on cgroup ``name`` (relative, may be nested: ``jailer/c1``) below ``parent``
    (a path inside the hierarchy; default: the caller's own cgroup, read from ``proc_cgroup``).
    Nothing is created until ``.create()``. ``version`` forces "v2" or "v1"; by default it is
    probed with ``detect(root)`` (a hybrid host uses the v1 backend). ``root`` may point at a
    fake cgroupfs tree for tests."""
    version = version or detect(root)
    if version == "v2":
        from .v2 import V2Cgroup

        return V2Cgroup(name, root=root, proc_cgroup=proc_cgroup, parent=parent)
    if version in ("v1", "hybrid"):
        from .v1 import V1Cgroup

        return V1Cgroup(name, root=root, proc_cgroup=proc_cgroup, parent=parent)
    raise CgroupError(f"cgroups: unknown cgroup version {version!r} (use v2 or v1)")


def create(name: str, limits: Limits | None = None, **kw: str) -> Cgroup:
    """``open_manager(name, **kw).create(limits)``."""
    return open_manager(name, **kw).create(limits)
