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

``Limits`` covers what cgroup v1 and v2 can express; ``Limits.unsupported(version)`` names
the fields a backend cannot set (they raise CgroupError), ``unavailable()`` those this
host's cgroups cannot (other version, controller not mounted, kernel file missing).

Cgroups are created only below the cgroup the calling process is in (per hierarchy), unless a
``parent`` is given. Only the backend in use is imported.

The systemd driver (``cgroups.systemd``, cgroup v2 only): the cgroup is a transient scope that
systemd makes over D-Bus (jeepney), named by an OCI ``slice:prefix:name``; it needs the pid of
its first process::

    with cgroups.open_systemd("system.slice:jailer:c1").create(lim, pid=pid) as cg: ...
"""

from __future__ import annotations

import os

from .base import UNLIMITED, Cgroup, CgroupError, Limits, Stats, own_cgroup, read_opt
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
           "Stats", "create", "detect", "needs_scope", "open_held_scope", "open_systemd",
           "parse_rule", "unavailable", "limits_from_options", "open_manager", "parse_cpus",
           "parse_cpuset", "parse_io_max", "parse_pids", "parse_size", "parse_weight"]

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


def unavailable(root: str = "/sys/fs/cgroup") -> dict[str, str]:
    """The Limits fields the cgroups mounted at ``root`` cannot set, each with the reason:
    the fields of the other cgroup version, those of controllers that are not there, and
    the knobs this kernel lacks (swap accounting, real-time groups, cpu.idle, BFQ weights),
    probed in the hierarchies' root cgroups."""
    from .base import NEEDS, V1_ONLY, V2_ONLY

    version = detect(root)
    if version == "v2":
        out = dict(V1_ONLY)
        have = set(open(f"{root}/cgroup.controllers").read().split())
        for ctrl, fields in NEEDS:
            for f in fields:
                if ctrl not in have and f not in out:
                    out[f] = f"the cgroup v2 '{ctrl}' controller is not available"
        return out
    out = dict(V2_ONLY)
    for ctrl, fields in NEEDS:
        top = f"{root}/{'blkio' if ctrl == 'io' else ctrl}"
        for f in fields:
            if not os.path.exists(f"{top}/cgroup.procs"):
                out[f] = f"the cgroup v1 '{os.path.basename(top)}' controller is not mounted"
    probes = (("memory_swap", "memory/memory.memsw.limit_in_bytes", "no swap accounting "
               "(boot with swapaccount=1)"),
              ("cpu_rt_runtime", "cpu/cpu.rt_runtime_us", "no CONFIG_RT_GROUP_SCHED"),
              ("cpu_rt_period", "cpu/cpu.rt_period_us", "no CONFIG_RT_GROUP_SCHED"),
              ("cpu_idle", "cpu/cpu.idle", "no cpu.idle (Linux 5.15+)"),
              ("io_weight", "blkio/blkio.weight|blkio/blkio.bfq.weight", "no BFQ I/O scheduler"),
              ("io_weight_device", "blkio/blkio.weight_device|blkio/blkio.bfq.weight_device",
               "no BFQ I/O scheduler"),
              ("io_leaf_weight", "blkio/blkio.leaf_weight", "no CFQ (gone since Linux 5.0)"))
    for field, files, why in probes:
        if field not in out and not any(os.path.exists(f"{root}/{f}") for f in files.split("|")):
            out[field] = why
    return out


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


def needs_scope(proc_cgroup: str, root: str = "/sys/fs/cgroup") -> bool:
    """Does a cgroup made below the v2 cgroup that ``proc_cgroup`` names (a /proc/PID/cgroup
    file) need a scope of its own instead? On a pure-v2 host booted with systemd, when that
    cgroup is not the root and holds processes (a session's or a service's: no child of
    it can have controllers); never on a v1 or hybrid host or without systemd."""
    if not os.path.isdir("/run/systemd/system") or \
            not os.path.exists(f"{root}/cgroup.controllers"):
        return False
    try:
        own = own_cgroup(proc_cgroup, "").strip("/")
    except CgroupError:
        return False
    return bool(own) and bool(read_opt(f"{root}/{own}/cgroup.procs"))


def open_held_scope(cgroups_path: str, *, root: str = "/sys/fs/cgroup", description: str = ""):
    """A ``cgroups.systemd.HeldScope`` (not yet started) on the scope ``slice:prefix:name``
    names: a place of its own for the cgroups ``needs_scope`` says cannot go below the
    caller's. Imports the systemd driver only here."""
    from .systemd import HeldScope, parse_cgroups_path

    return HeldScope(parse_cgroups_path(cgroups_path), root=root, description=description)


def open_systemd(cgroups_path: str, name: str = "", *, root: str = "/sys/fs/cgroup",
                 description: str = "") -> Cgroup:
    """A handle on the systemd scope (or slice) that OCI ``cgroups_path`` names
    (``slice:prefix:name``; empty: ``:jailer:NAME``); nothing is started until
    ``.create(limits, pid=...)``. Malformed input or a v1/hybrid host: one CgroupError line.
    Imports the systemd driver (and, once it talks to systemd, jeepney) only here."""
    from .systemd import SystemdCgroup, parse_cgroups_path

    return SystemdCgroup(parse_cgroups_path(cgroups_path, name), root=root,
                         description=description)
