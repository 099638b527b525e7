"""cgroup v2 (the unified hierarchy): one directory; controllers are handed down level by level
through cgroup.subtree_control, and a cgroup other than the root may hand them down only while
it has no processes of its own (the no-internal-processes rule)."""

from __future__ import annotations

import os

from . import base  # base.mkdir / base.rmdir: looked up at call time (a fake cgroupfs seam)
from .base import (
    UNLIMITED,
    Cgroup,
    CgroupError,
    Limits,
    Stats,
    check_update,
    fail,
    int_opt,
    keyed,
    own_cgroup,
    poll_fd,
    rdma_line,
    read,
    read_opt,
    shares_to_weight,
    wait_until,
    write,
)

CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma")
"""Enabled for the new cgroup when available; only those the limits need are required."""

_POLLPRI = 2  # select.POLLPRI: cgroupfs signals a changed events file with it


def _fmt(value: int) -> str:
    return "max" if value == UNLIMITED else str(value)


def _tokens(text: str | None) -> set[str]:
    return {t.lstrip("+") for t in (text or "").split()}


class V2Cgroup(Cgroup):
    """A cgroup on the unified hierarchy mounted at ``root``."""

    version = "v2"

    def __init__(self, name: str, *, root: str = "/sys/fs/cgroup",
                 proc_cgroup: str = "/proc/self/cgroup", parent: str | None = None) -> None:
        super().__init__(name, root)
        own = parent if parent is not None else own_cgroup(proc_cgroup, "")
        base_dir = os.path.join(root, own.strip("/")) if own.strip("/") else root
        if not os.path.isdir(base_dir):  # a container without a cgroup namespace
            base_dir = root
        self.base = base_dir
        self.dirs = [os.path.join(base_dir, name)]

    # ── create ───────────────────────────────────────────────────────────────────────────
    def create(self, limits: Limits | None = None, *, exist_ok: bool = False) -> V2Cgroup:
        limits = limits or Limits()
        check_update(limits.replace(devices=None), self.version)
        need = limits.controllers()
        made: list[str] = []
        try:
            # walk from the hierarchy root down to the new cgroup's parent, handing the
            # controllers down at every level (and making the levels of a nested name)
            levels = os.path.relpath(self.path, self.root).split("/")
            wanted = set(CONTROLLERS) | need
            available = _tokens(read(f"{self.root}/cgroup.controllers"))
            d = self.root
            for i, part in enumerate(levels):
                available = self._enable(d, available, wanted, need)
                d = os.path.join(d, part)
                if not os.path.isdir(d):
                    base.mkdir(d)
                    made.append(d)
                elif i == len(levels) - 1 and not exist_ok:
                    raise CgroupError(f"cgroups: {d} already exists (left over from an earlier "
                                      "run? delete it first)")
            self.update(limits.replace(devices=None))
            if limits.devices is not None:  # once, at creation: programs stack up
                from .ebpf import apply

                apply(self.path, limits.devices)
        except BaseException:
            base.remove_made(made)
            raise
        return self

    def _enable(self, d: str, available: set[str], wanted: set[str], need: set[str]) -> set[str]:
        """Enable the ``wanted`` controllers among those ``available`` in ``d`` for its children
        where possible; raise if one of ``need`` cannot be; return those its children have."""
        enabled = _tokens(read(f"{d}/cgroup.subtree_control"))
        missing = sorted(wanted - enabled)
        for c in missing:
            if c not in available and c in need:
                raise CgroupError(
                    f"cgroups: the cgroup v2 '{c}' controller is not available in {d} (has: "
                    f"{' '.join(sorted(available)) or 'none'}): the kernel lacks it, a v1 "
                    "hierarchy holds it (boot with cgroup_no_v1=all), or it was not delegated "
                    "to this cgroup tree (systemd: Delegate=yes)")
        todo = [c for c in missing if c in available]
        if todo and d != self.root and read_opt(f"{d}/cgroup.procs"):
            blocked = [c for c in todo if c in need]
            if blocked:
                raise CgroupError(
                    f"cgroups: cannot enable the '{blocked[0]}' controller below {d}: it has "
                    "processes of its own (cgroup v2 no-internal-processes rule): move them "
                    f"into a leaf cgroup of their own first (mkdir {d}/leaf, then write each "
                    f"pid to {d}/leaf/cgroup.procs), or start from a cgroup without processes")
            return enabled
        if todo:
            try:  # one write for all of them; on failure find out which one fails
                write(f"{d}/cgroup.subtree_control", " ".join("+" + c for c in todo))
            except CgroupError:
                for c in list(todo):
                    try:
                        write(f"{d}/cgroup.subtree_control", "+" + c)
                    except CgroupError as e:
                        if c in need:
                            why = str(e).removeprefix("cgroups: ")
                            raise CgroupError(f"cgroups: cannot enable the '{c}' controller for "
                                              f"the children of {d}: {why}", errno=e.errno,
                                              path=e.path) from None
                        todo.remove(c)
        return enabled | set(todo)

    # ── limits ───────────────────────────────────────────────────────────────────────────
    def update(self, limits: Limits) -> None:
        check_update(limits, self.version)
        p = self.path
        lim = limits
        self._set_memory(lim)
        self._set_cpu(lim)
        if lim.cpuset_cpus is not None:
            write(f"{p}/cpuset.cpus", lim.cpuset_cpus, "no such CPU here?")
        if lim.cpuset_mems is not None:
            write(f"{p}/cpuset.mems", lim.cpuset_mems, "no such memory node here?")
        if lim.pids_max is not None:
            write(f"{p}/pids.max", _fmt(lim.pids_max))
        self._set_io(lim)
        for size, limit in (lim.hugetlb or {}).items():
            write(f"{p}/hugetlb.{size}.max", _fmt(limit), f"no {size} huge pages here?")
            if os.path.exists(f"{p}/hugetlb.{size}.rsvd.max"):
                write(f"{p}/hugetlb.{size}.rsvd.max", _fmt(limit))
        for dev, values in (lim.rdma or {}).items():
            write(f"{p}/rdma.max", rdma_line(dev, values), "no such RDMA device?")
        for key, value in (lim.unified or {}).items():
            self._set_unified(key, value)

    def _set_memory(self, lim: Limits) -> None:
        p = self.path
        if lim.memory_max is not None:
            write(f"{p}/memory.max", _fmt(lim.memory_max),
                  "below current usage? the kernel could not reclaim enough")
        if lim.memory_high is not None:
            write(f"{p}/memory.high", _fmt(lim.memory_high))
        if lim.memory_low is not None:
            write(f"{p}/memory.low", _fmt(lim.memory_low))
        if lim.memory_swap is not None:
            if lim.memory_swap == UNLIMITED:
                swap = UNLIMITED
            else:
                mem = lim.memory_max if lim.memory_max is not None else \
                    int_opt(f"{p}/memory.max")
                if mem is None or mem == UNLIMITED:
                    raise CgroupError("cgroups: a memory+swap limit needs a memory limit")
                swap = max(lim.memory_swap - mem, 0)
            write(f"{p}/memory.swap.max", _fmt(swap),
                  "swap limits need swap accounting (CONFIG_MEMCG_SWAP)")

    def _set_cpu(self, lim: Limits) -> None:
        p = self.path
        if lim.cpu_quota is not None or lim.cpu_period is not None:
            quota, period = read(f"{p}/cpu.max").split()  # keep the half not given
            if lim.cpu_quota is not None:
                quota = _fmt(lim.cpu_quota)
            if lim.cpu_period is not None:
                period = str(lim.cpu_period)
            write(f"{p}/cpu.max", f"{quota} {period}")
        weight = lim.cpu_weight
        if weight is None and lim.cpu_shares is not None:
            weight = shares_to_weight(lim.cpu_shares)
        if weight is not None:
            write(f"{p}/cpu.weight", weight)
        if lim.cpu_idle is not None:
            write(f"{p}/cpu.idle", lim.cpu_idle, "cpu.idle needs Linux 5.15 or later")

    def _set_io(self, lim: Limits) -> None:
        p = self.path
        if lim.io_weight is not None or lim.io_weight_device:
            files = [f for f in ("io.weight", "io.bfq.weight") if os.path.exists(f"{p}/{f}")]
            if not files:
                raise CgroupError(f"cgroups: an io weight needs io.weight or io.bfq.weight in "
                                  f"{p}: use the BFQ scheduler or enable io.cost")
            if lim.io_weight is not None:
                write(f"{p}/{files[0]}", f"default {lim.io_weight}")
            for dev, weight in (lim.io_weight_device or {}).items():  # BFQ's first, as runc
                write(f"{p}/{files[-1]}", f"{dev} {weight}", "a per-device io weight needs the "
                      "BFQ scheduler (io.bfq.weight) or io.cost enabled for that device")
        for dev, values in (lim.io_max or {}).items():
            spec = " ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            write(f"{p}/io.max", f"{dev} {spec}",
                  "io limits apply to whole disks, not partitions")

    def _set_unified(self, key: str, value: str) -> None:
        """One ``unified`` entry: a file of this cgroup, written as given (runc's rules: a
        plain file name of the form CONTROLLER.PARAMETER)."""
        ctrl, dot, _ = key.partition(".")
        if "/" in key or not dot or not ctrl or key.startswith("."):
            raise CgroupError(f"cgroups: unified resource {key!r} must be a file name of the "
                              "form CONTROLLER.PARAMETER (no slashes)")
        if ctrl != "cgroup" and ctrl not in _tokens(read_opt(f"{self.path}/cgroup.controllers")):
            raise CgroupError(f"cgroups: unified resource {key!r} cannot be set: the "
                              f"{ctrl!r} controller is not available in {self.path}")
        write(f"{self.path}/{key}", value, f"unified resource {key!r}: no such file here")

    def limits(self) -> Limits:
        p = self.path
        cpu = (read_opt(f"{p}/cpu.max") or "").split()
        mem, swap = int_opt(f"{p}/memory.max"), int_opt(f"{p}/memory.swap.max")
        io_max = {}
        for line in (read_opt(f"{p}/io.max") or "").splitlines():
            dev, *items = line.split()
            io_max[dev] = {k: UNLIMITED if v == "max" else int(v)
                           for k, _, v in (i.partition("=") for i in items)}
        weight = keyed(read_opt(f"{p}/io.weight") or read_opt(f"{p}/io.bfq.weight"))
        if mem is None or swap is None:
            total = None
        else:
            total = UNLIMITED if UNLIMITED in (mem, swap) else mem + swap
        return Limits(
            memory_max=mem, memory_high=int_opt(f"{p}/memory.high"), memory_swap=total,
            memory_low=int_opt(f"{p}/memory.low"), cpu_idle=int_opt(f"{p}/cpu.idle"),
            cpu_quota=(UNLIMITED if cpu[0] == "max" else int(cpu[0])) if cpu else None,
            cpu_period=int(cpu[1]) if cpu else None, cpu_weight=int_opt(f"{p}/cpu.weight"),
            cpuset_cpus=read_opt(f"{p}/cpuset.cpus"), cpuset_mems=read_opt(f"{p}/cpuset.mems"),
            pids_max=int_opt(f"{p}/pids.max"), io_weight=weight.get("default"),
            io_max=io_max or None)

    # ── usage and events ─────────────────────────────────────────────────────────────────
    def stats(self) -> Stats:
        p = self.path
        cpu = keyed(read_opt(f"{p}/cpu.stat"))
        mev = keyed(read_opt(f"{p}/memory.events"))
        io = read_opt(f"{p}/io.stat")
        rd = wr = None
        if io is not None:
            rd = wr = 0
            for line in io.splitlines():
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    if key == "rbytes":
                        rd += int(value)
                    elif key == "wbytes":
                        wr += int(value)
        return Stats(memory_current=int_opt(f"{p}/memory.current"),
                     memory_peak=int_opt(f"{p}/memory.peak"),
                     cpu_usage_usec=cpu.get("usage_usec"), cpu_user_usec=cpu.get("user_usec"),
                     cpu_system_usec=cpu.get("system_usec"),
                     pids_current=int_opt(f"{p}/pids.current"), io_read_bytes=rd,
                     io_write_bytes=wr, oom=mev.get("oom"), oom_kill=mev.get("oom_kill"))

    def events(self) -> dict[str, int]:
        ev = keyed(read_opt(f"{self.path}/memory.events"))
        pids = keyed(read_opt(f"{self.path}/pids.events"))
        if "max" in pids:
            ev["pids_max"] = pids["max"]
        return ev

    def wait_for_oom(self, timeout: float, since: int = 0) -> bool:
        path = f"{self.path}/memory.events"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise fail("open", path, e, "the memory controller is not enabled here") from None
        try:  # a changed events file polls POLLPRI until it is read again through this fd
            return poll_fd(fd, _POLLPRI, lambda: os.pread(fd, 4096, 0),
                           lambda: self.events().get("oom_kill", 0) > since, timeout)
        finally:
            os.close(fd)

    # ── processes ────────────────────────────────────────────────────────────────────────
    def _set_frozen(self, on: bool, timeout: float) -> None:
        write(f"{self.path}/cgroup.freeze", int(on))
        want = f"frozen {int(on)}"
        if not wait_until(lambda: want in read(f"{self.path}/cgroup.events"), timeout):
            raise CgroupError(f"cgroups: {self.path} did not become "
                              f"{'frozen' if on else 'thawed'} within {timeout:g} s")

    def freeze(self, timeout: float = 5.0) -> None:
        self._set_frozen(True, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        self._set_frozen(False, timeout)

    def kill(self, timeout: float = 5.0) -> None:
        if os.path.exists(f"{self.path}/cgroup.kill"):
            write(f"{self.path}/cgroup.kill", 1)
        else:  # before Linux 5.14: freeze, kill, thaw
            self.freeze(timeout)
            self._kill_all()
            self.thaw(timeout)
        if not wait_until(lambda: not self.procs(), timeout):
            raise CgroupError(f"cgroups: processes {self.procs()} in {self.path} survived "
                              f"SIGKILL for {timeout:g} s")

    def delegate(self, uid: int, gid: int = -1, *,
                 delegate_file: str = "/sys/kernel/cgroup/delegate") -> None:
        # OCI runtime-spec "cgroup ownership": the directory, cgroup.procs, cgroup.threads,
        # cgroup.subtree_control and what the kernel lists as safe to delegate -- never the
        # limit files of the cgroup itself, so the delegatee cannot raise its own limits.
        names = {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}
        names.update((read_opt(delegate_file) or "").split())
        try:
            os.chown(self.path, uid, gid)
            for name in sorted(names):
                if os.path.exists(f"{self.path}/{name}"):
                    os.chown(f"{self.path}/{name}", uid, gid)
        except OSError as e:
            raise fail("chown", e.filename or self.path, e) from None
