"""cgroup v1 (also the v1 side of a hybrid host): one hierarchy per controller, mounted at
``<root>/<controller>``; our cgroup is one directory in each, below the caller's own cgroup in
that hierarchy."""

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
    int_opt,
    keyed,
    own_cgroup,
    poll_fd,
    rdma_line,
    read,
    read_opt,
    wait_until,
    write,
)

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices",
               "net_cls", "net_prio", "hugetlb", "rdma")
_OPTIONAL = ("devices", "net_cls", "net_prio", "hugetlb", "rdma")
"""Hierarchies a saved /proc/PID/cgroup copy may not name (written before they were used)."""
_V1_NAME = {"io": "blkio"}
_THROTTLE = {"rbps": "read_bps", "wbps": "write_bps", "riops": "read_iops", "wiops": "write_iops"}
_HUGE = 1 << 62  # v1 reports "no memory limit" as a number near 2**63


def _mem(value: int | None) -> int | None:
    return UNLIMITED if value is not None and value >= _HUGE else value


class V1Cgroup(Cgroup):
    """A cgroup spread over the v1 hierarchies found under ``root``."""

    version = "v1"

    def __init__(self, name: str, *, root: str = "/sys/fs/cgroup",
                 proc_cgroup: str = "/proc/self/cgroup", parent: str | None = None) -> None:
        super().__init__(name, root)
        self.paths: dict[str, str] = {}  # controller -> our directory in its hierarchy
        by_real: dict[str, str] = {}  # co-mounted controllers (cpu,cpuacct) share one
        for c in CONTROLLERS:
            top = os.path.join(root, c)
            if not os.path.exists(f"{top}/cgroup.procs"):
                continue
            try:
                own = (parent if parent is not None else own_cgroup(proc_cgroup, c)).strip("/")
            except CgroupError:
                if c not in _OPTIONAL:
                    raise
                continue
            base_dir = os.path.join(top, own) if own else top
            if not os.path.isdir(base_dir):  # a container without a cgroup namespace
                base_dir = top
            d = os.path.join(base_dir, name)
            self.paths[c] = by_real.setdefault(os.path.realpath(d), d)
        self.dirs = list(dict.fromkeys(self.paths.values()))
        if not self.dirs:
            raise CgroupError(f"cgroups: no cgroup v1 hierarchy under {root}")

    def _dir(self, ctrl: str, purpose: str) -> str:
        """Our directory in ``ctrl``'s hierarchy, or a clear error if it is not mounted."""
        if ctrl in self.paths:
            return self.paths[ctrl]
        top = f"{self.root}/{ctrl}"
        if ctrl in (read_opt(f"{self.root}/unified/cgroup.controllers") or "").split():
            raise CgroupError(f"cgroups: {purpose} needs the cgroup v1 '{ctrl}' controller, which "
                              f"is not mounted at {top}: this hybrid host has it on the cgroup2 "
                              f"mount {self.root}/unified, which (as runc) jailer does not use "
                              "for limits; boot with cgroup v2 only or do without it")
        raise CgroupError(f"cgroups: {purpose} needs the cgroup v1 '{ctrl}' controller, which "
                          f"is not mounted at {top}: mount it (mkdir -p {top} && mount -t cgroup "
                          f"-o {ctrl} cgroup {top}) or do without it")

    # ── create ───────────────────────────────────────────────────────────────────────────
    def create(self, limits: Limits | None = None, *, exist_ok: bool = False) -> V1Cgroup:
        limits = limits or Limits()
        check_update(limits.replace(devices=None), self.version)
        for c in sorted(limits.controllers()):
            self._dir(_V1_NAME.get(c, c), f"a {c} limit")
        if limits.devices is not None:
            self._dir("devices", "device control (deny by default)")
        made: list[str] = []
        parts = self.name.split("/")
        try:
            for d in self.dirs:
                cur = d[: len(d) - len(self.name) - 1]
                for i, part in enumerate(parts):
                    parent, cur = cur, os.path.join(cur, part)
                    if os.path.isdir(cur):
                        if i == len(parts) - 1 and not exist_ok:
                            raise CgroupError(f"cgroups: {cur} already exists (left over from "
                                              "an earlier run? delete it first)")
                    else:
                        base.mkdir(cur)
                        made.append(cur)
                    # a new cpuset starts empty, and so may a level someone else made: a
                    # task cannot join a cpuset without cpus and mems (runc fills them too)
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        if os.path.exists(f"{cur}/{f}") and not read(f"{cur}/{f}"):
                            write(f"{cur}/{f}", read(f"{parent}/{f}"))
            if limits.devices is not None:
                self._set_devices(limits.devices)
            self.update(limits.replace(devices=None))
        except BaseException:
            base.remove_made(made)
            raise
        return self

    def _set_devices(self, rules: list) -> None:
        """``devices.deny a`` (a reset), then each rule in order: the kernel keeps the
        exceptions to the default, as the rules say."""
        from .devices import effective

        d = self.paths["devices"]
        hint = "device rules need root (CAP_SYS_ADMIN) and a parent that allows the devices"
        for rule in effective(rules):
            write(f"{d}/devices.{'allow' if rule.allow else 'deny'}", rule.text(), hint)

    # ── limits ───────────────────────────────────────────────────────────────────────────
    def update(self, limits: Limits) -> None:
        check_update(limits, self.version)
        self._set_memory(limits)
        self._set_cpu(limits)
        for field, f in (("cpuset_cpus", "cpuset.cpus"), ("cpuset_mems", "cpuset.mems")):
            if getattr(limits, field) is not None:
                d = self._dir("cpuset", "a cpuset")
                write(f"{d}/{f}", getattr(limits, field), "no such CPU or memory node here?")
        if limits.pids_max is not None:
            d = self._dir("pids", "a pids limit")
            write(f"{d}/pids.max", "max" if limits.pids_max == UNLIMITED else limits.pids_max)
        self._set_blkio(limits)
        self._set_other(limits)

    def _set_memory(self, lim: Limits) -> None:
        pairs = []
        if lim.memory_max is not None:
            pairs.append(("memory.limit_in_bytes", lim.memory_max))
        if lim.memory_swap is not None:
            pairs.append(("memory.memsw.limit_in_bytes", lim.memory_swap))
        if pairs:
            d = self._dir("memory", "a memory limit")
            if lim.memory_swap is not None and \
                    not os.path.exists(f"{d}/memory.memsw.limit_in_bytes"):
                raise CgroupError("cgroups: a memory+swap limit needs swap accounting on "
                                  "cgroup v1 (boot with swapaccount=1)")
            try:  # memsw must stay >= the memory limit: the right order depends on the values
                for f, v in pairs:
                    write(f"{d}/{f}", v)
            except CgroupError:
                for f, v in reversed(pairs):
                    write(f"{d}/{f}", v, "below current usage, or memory+swap below memory?")
        for field, f in (("memory_low", "memory.soft_limit_in_bytes"),
                         ("memory_swappiness", "memory.swappiness"),
                         ("memory_oom_kill_disable", "memory.oom_control")):
            value = getattr(lim, field)
            if value is not None:
                d = self._dir("memory", f"a memory setting ({f})")
                write(f"{d}/{f}", int(value))

    def _set_cpu(self, lim: Limits) -> None:
        if all(getattr(lim, f) is None for f in ("cpu_period", "cpu_quota", "cpu_weight",
                                                  "cpu_shares", "cpu_idle", "cpu_rt_runtime",
                                                  "cpu_rt_period")):
            return
        d = self._dir("cpu", "a cpu limit")
        if lim.cpu_period is not None:
            write(f"{d}/cpu.cfs_period_us", lim.cpu_period)
        if lim.cpu_quota is not None:
            write(f"{d}/cpu.cfs_quota_us", lim.cpu_quota)
        shares = lim.cpu_shares
        if shares is None and lim.cpu_weight is not None:
            shares = max(2, lim.cpu_weight * 1024 // 100)
        if shares is not None:
            write(f"{d}/cpu.shares", shares)
            got = int_opt(f"{d}/cpu.shares")
            if got != shares:  # the kernel clamps silently: say so, as runc does
                raise CgroupError(f"cgroups: cpu.shares {shares} is out of range: the kernel "
                                  f"set {got} ({'maximum' if shares > (got or 0) else 'minimum'}"
                                  f" allowed: {got})")
        if lim.cpu_idle is not None:
            write(f"{d}/cpu.idle", lim.cpu_idle, "cpu.idle needs Linux 5.15 or later")
        self._set_rt(d, lim)

    def _set_rt(self, d: str, lim: Limits) -> None:
        """Real-time bandwidth: the period and runtime depend on each other (runtime <=
        period, and the sum of the children's runtimes <= the parent's), so a period the
        kernel refuses first is tried again after the runtime."""
        hint = "needs CONFIG_RT_GROUP_SCHED and real-time budget in the parent cgroups"
        retry = False
        if lim.cpu_rt_period is not None:
            try:
                write(f"{d}/cpu.rt_period_us", lim.cpu_rt_period, hint)
            except CgroupError as e:
                if e.errno != 22 or lim.cpu_rt_runtime is None:
                    raise
                retry = True
        if lim.cpu_rt_runtime is not None:
            write(f"{d}/cpu.rt_runtime_us", lim.cpu_rt_runtime, hint)
        if retry:
            write(f"{d}/cpu.rt_period_us", lim.cpu_rt_period, hint)

    def _set_blkio(self, lim: Limits) -> None:
        if lim.io_weight is not None:
            d = self._dir("blkio", "an io weight")
            f = self._weight_file(d, "weight")
            write(f"{d}/{f}", min(max(lim.io_weight, 10), 1000))  # v1 range: 10..1000
        if lim.io_leaf_weight is not None:
            d = self._dir("blkio", "an io leaf weight")
            write(f"{d}/blkio.leaf_weight", lim.io_leaf_weight,
                  "blkio.leaf_weight is CFQ's (removed in Linux 5.0)")
        for dev, weight in (lim.io_weight_device or {}).items():
            d = self._dir("blkio", "an io weight")
            write(f"{d}/{self._weight_file(d, 'weight_device')}", f"{dev} {weight}")
        for dev, values in (lim.io_max or {}).items():
            d = self._dir("blkio", "an io limit")
            for key, v in values.items():
                write(f"{d}/blkio.throttle.{_THROTTLE[key]}_device",
                      f"{dev} {0 if v == UNLIMITED else v}",
                      "io limits apply to whole disks, not partitions")

    @staticmethod
    def _weight_file(d: str, what: str) -> str:
        f = next((f for f in (f"blkio.{what}", f"blkio.bfq.{what}")
                  if os.path.exists(f"{d}/{f}")), None)
        if f is None:
            raise CgroupError(f"cgroups: an io weight needs blkio.{what} or blkio.bfq.{what} "
                              f"in {d}: use the BFQ I/O scheduler")
        return f

    def _set_other(self, lim: Limits) -> None:
        """net_cls, net_prio, hugetlb and rdma."""
        if lim.net_classid is not None:
            write(f"{self._dir('net_cls', 'a network class id')}/net_cls.classid",
                  lim.net_classid)
        for iface, prio in (lim.net_priorities or {}).items():
            write(f"{self._dir('net_prio', 'network priorities')}/net_prio.ifpriomap",
                  f"{iface} {prio}", "no such network interface?")
        for size, limit in (lim.hugetlb or {}).items():
            d = self._dir("hugetlb", "a huge page limit")
            write(f"{d}/hugetlb.{size}.limit_in_bytes", -1 if limit == UNLIMITED else limit,
                  f"no {size} huge pages on this system?")
            if os.path.exists(f"{d}/hugetlb.{size}.rsvd.limit_in_bytes"):
                write(f"{d}/hugetlb.{size}.rsvd.limit_in_bytes",
                      -1 if limit == UNLIMITED else limit)
        for dev, values in (lim.rdma or {}).items():
            write(f"{self._dir('rdma', 'an rdma limit')}/rdma.max", rdma_line(dev, values),
                  "no such RDMA device?")

    def limits(self) -> Limits:
        m, c, s, p, b = (self.paths.get(k, "/nonexistent")
                         for k in ("memory", "cpu", "cpuset", "pids", "blkio"))
        shares = int_opt(f"{c}/cpu.shares")
        weight = int_opt(f"{b}/blkio.weight") or int_opt(f"{b}/blkio.bfq.weight")
        io_max: dict[str, dict[str, int]] = {}
        for key, name in _THROTTLE.items():
            for line in (read_opt(f"{b}/blkio.throttle.{name}_device") or "").splitlines():
                dev, value = line.split()
                io_max.setdefault(dev, {})[key] = int(value)
        return Limits(
            memory_max=_mem(int_opt(f"{m}/memory.limit_in_bytes")),
            memory_low=_mem(int_opt(f"{m}/memory.soft_limit_in_bytes")),
            memory_swappiness=int_opt(f"{m}/memory.swappiness"),
            cpu_idle=int_opt(f"{c}/cpu.idle"),
            cpu_rt_runtime=int_opt(f"{c}/cpu.rt_runtime_us"),
            cpu_rt_period=int_opt(f"{c}/cpu.rt_period_us"),
            memory_swap=_mem(int_opt(f"{m}/memory.memsw.limit_in_bytes")),
            cpu_quota=int_opt(f"{c}/cpu.cfs_quota_us"),
            cpu_period=int_opt(f"{c}/cpu.cfs_period_us"),
            cpu_weight=None if shares is None else max(1, min(10000, round(shares * 100 / 1024))),
            cpuset_cpus=read_opt(f"{s}/cpuset.cpus"), cpuset_mems=read_opt(f"{s}/cpuset.mems"),
            pids_max=int_opt(f"{p}/pids.max"),
            io_weight=weight,
            io_max=io_max or None)

    # ── usage and events ─────────────────────────────────────────────────────────────────
    def stats(self) -> Stats:
        m, a, p, b = (self.paths.get(k, "/nonexistent")
                      for k in ("memory", "cpuacct", "pids", "blkio"))
        usec = {f: None if ns is None else ns // 1000
                for f in ("usage", "usage_user", "usage_sys")
                for ns in (int_opt(f"{a}/cpuacct.{f}"),)}
        rd = wr = None
        io = read_opt(f"{b}/blkio.throttle.io_service_bytes_recursive")
        if io is not None:
            rd = wr = 0
            for line in io.splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[1] == "Read":
                    rd += int(fields[2])
                elif len(fields) == 3 and fields[1] == "Write":
                    wr += int(fields[2])
        return Stats(memory_current=int_opt(f"{m}/memory.usage_in_bytes"),
                     memory_peak=int_opt(f"{m}/memory.max_usage_in_bytes"),
                     cpu_usage_usec=usec["usage"], cpu_user_usec=usec["usage_user"],
                     cpu_system_usec=usec["usage_sys"], pids_current=int_opt(f"{p}/pids.current"),
                     io_read_bytes=rd, io_write_bytes=wr,
                     oom_kill=keyed(read_opt(f"{m}/memory.oom_control")).get("oom_kill"))

    def events(self) -> dict[str, int]:
        ev = keyed(read_opt(f"{self.paths.get('memory', '/nonexistent')}/memory.oom_control"))
        pids = keyed(read_opt(f"{self.paths.get('pids', '/nonexistent')}/pids.events"))
        if "max" in pids:
            ev["pids_max"] = pids["max"]
        return ev

    def wait_for_oom(self, timeout: float, since: int = 0) -> bool:
        d = self._dir("memory", "waiting for an OOM kill")
        done = lambda: self.events().get("oom_kill", 0) > since  # noqa: E731
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        ofd = os.open(f"{d}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:  # the kernel signals the eventfd on every OOM in the cgroup
            write(f"{d}/cgroup.event_control", f"{efd} {ofd}")
            return poll_fd(efd, 1, lambda: os.read(efd, 8), done, timeout)  # 1: POLLIN
        except CgroupError:  # no cgroup.event_control: plain polling
            return wait_until(done, timeout)
        finally:
            os.close(ofd)
            os.close(efd)

    # ── processes ────────────────────────────────────────────────────────────────────────
    def _set_state(self, state: str, timeout: float) -> None:
        d = self._dir("freezer", "freeze/thaw")
        write(f"{d}/freezer.state", state)

        def done() -> bool:  # FREEZING means "not yet": ask again until it sticks
            if read(f"{d}/freezer.state") == state:
                return True
            write(f"{d}/freezer.state", state)
            return False

        if not wait_until(done, timeout):
            raise CgroupError(f"cgroups: {d} did not become {state.lower()} within {timeout:g} s")

    def freeze(self, timeout: float = 5.0) -> None:
        self._set_state("FROZEN", timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        self._set_state("THAWED", timeout)

    def kill(self, timeout: float = 5.0) -> None:
        # v1 has no cgroup.kill: freeze (so nothing forks meanwhile), SIGKILL all, thaw
        frozen = "freezer" in self.paths and os.path.isdir(self.paths["freezer"])

        def gone() -> bool:
            if frozen:
                try:
                    self.freeze(1.0)
                except CgroupError:
                    pass
            self._kill_all()
            if frozen:
                self.thaw(1.0)
            return wait_until(lambda: not self.procs(), 0.1)

        if not wait_until(gone, timeout):
            raise CgroupError(f"cgroups: processes {self.procs()} in {self.path} survived "
                              f"SIGKILL for {timeout:g} s")

    def delegate(self, uid: int, gid: int = -1, *,
                 delegate_file: str = "/sys/kernel/cgroup/delegate") -> None:
        # v1 knows no delegation protocol: hand over the directories and the files that move
        # processes (never the limit files).
        try:
            for d in self.dirs:
                os.chown(d, uid, gid)
                for name in ("cgroup.procs", "tasks"):
                    if os.path.exists(f"{d}/{name}"):
                        os.chown(f"{d}/{name}", uid, gid)
        except OSError as e:
            raise base.fail("chown", e.filename or self.path, e) from None
