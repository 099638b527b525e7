"""What both backends share: the error type, the Limits and Stats records, the Cgroup interface,
and the few file operations on cgroupfs (kept here so a fake cgroupfs can stand in for them)."""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing/collections import at run time: import time is start latency
    from collections.abc import Callable, Iterator

UNLIMITED = -1
"""A limit value meaning "no limit" (written as ``max`` on v2, ``-1`` or ``0`` on v1)."""


class CgroupError(ValueError):
    """A cgroup operation or a limit value failed; the message is one line saying what, where
    and what to do. ``errno`` and ``path`` are set when a file operation failed."""

    def __init__(self, message: str, *, errno: int | None = None, path: str | None = None):
        super().__init__(message)
        self.errno = errno
        self.path = path


class _Record:
    """A plain record with keyword construction, a compact repr, equality and ``as_dict``."""

    __slots__ = ()

    def __init__(self, **values: object) -> None:
        for name in self.__slots__:
            setattr(self, name, values.pop(name, None))
        if values:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(values)}")

    def replace(self, **changes: object) -> _Record:
        """A copy with ``changes`` applied."""
        return type(self)(**{**{k: getattr(self, k) for k in self.__slots__}, **changes})

    def as_dict(self) -> dict[str, object]:
        """The fields that are set (not None), e.g. for JSON output."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"{type(self).__name__}({items})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.as_dict() == other.as_dict()  # type: ignore


class Limits(_Record):
    """Resource limits. Every field is optional: None leaves the kernel's value alone (so an
    ``update`` changes only what it names); ``UNLIMITED`` (-1) removes a limit.

    - ``memory_max``, ``memory_high``: bytes (``memory_high`` is v2 only)
    - ``memory_low``: bytes of best-effort protection (v2 ``memory.low``; v1 has only the soft
      limit ``memory.soft_limit_in_bytes``, which plays that part: OCI's memory.reservation)
    - ``memory_swap``: memory + swap in bytes, as docker's ``--memory-swap`` and OCI's
      ``memory.swap`` (v2 writes ``memory.swap.max`` = memory_swap - memory_max)
    - ``memory_swappiness`` (0..100), ``memory_oom_kill_disable`` (bool): v1 only
    - ``cpu_quota``, ``cpu_period``: microseconds of CPU time per period (``--cpus 0.5`` is
      50000 per 100000)
    - ``cpu_weight``: 1..10000, default 100 (v1 uses ``cpu.shares`` = weight * 1024 / 100)
    - ``cpu_shares``: 2..262144, v1's own unit, written unchanged on v1 (v2: converted to a
      weight as runc does, unless ``cpu_weight`` is given too)
    - ``cpu_idle``: 0 or 1 (``cpu.idle``, Linux 5.15+)
    - ``cpu_rt_runtime``, ``cpu_rt_period``: microseconds of real-time CPU per period
      (``cpu.rt_runtime_us``/``cpu.rt_period_us``: v1 with CONFIG_RT_GROUP_SCHED)
    - ``cpuset_cpus``, ``cpuset_mems``: lists such as ``"0-3,6"``
    - ``pids_max``: at least 1
    - ``io_weight``: 1..10000, default 100 (v1: blkio weight, clamped to 10..1000)
    - ``io_weight_device``: ``{"MAJ:MIN": weight}``; ``io_leaf_weight``: v1 (CFQ) only
    - ``io_max``: ``{"MAJ:MIN": {"rbps"|"wbps"|"riops"|"wiops": int}}``
    - ``net_classid`` (net_cls), ``net_priorities`` (``{"eth0": prio}``, net_prio): v1 only
    - ``hugetlb``: ``{"2MB": bytes}`` per huge page size (as the kernel names the files)
    - ``rdma``: ``{"mlx5_0": {"hca_handle": n, "hca_object": n}}``
    - ``unified``: ``{"file.name": "value"}`` written as given (v2 only, as runc)
    - ``devices``: the device cgroup's rules, a list of ``cgroups.devices.DeviceRule`` read
      in order after an implicit deny-all (the last matching rule decides); set when the
      cgroup is created (v1: the ``devices`` controller, v2: an eBPF program), not by
      ``update``. None: no device control.

    A field the backend in use cannot set raises CgroupError at ``create``/``update``;
    ``unsupported(version)`` lists them beforehand, so a caller can warn and drop them.
    """

    __slots__ = ("memory_max", "memory_high", "memory_low", "memory_swap", "memory_swappiness",
                 "memory_oom_kill_disable", "cpu_quota", "cpu_period", "cpu_weight",
                 "cpu_shares", "cpu_idle", "cpu_rt_runtime", "cpu_rt_period", "cpuset_cpus",
                 "cpuset_mems", "pids_max", "io_weight", "io_weight_device", "io_leaf_weight",
                 "io_max", "net_classid", "net_priorities", "hugetlb", "rdma", "unified",
                 "devices")

    memory_max: int | None
    memory_high: int | None
    memory_low: int | None
    memory_swap: int | None
    memory_swappiness: int | None
    memory_oom_kill_disable: bool | None
    cpu_quota: int | None
    cpu_period: int | None
    cpu_weight: int | None
    cpu_shares: int | None
    cpu_idle: int | None
    cpu_rt_runtime: int | None
    cpu_rt_period: int | None
    cpuset_cpus: str | None
    cpuset_mems: str | None
    pids_max: int | None
    io_weight: int | None
    io_weight_device: dict[str, int] | None
    io_leaf_weight: int | None
    io_max: dict[str, dict[str, int]] | None
    net_classid: int | None
    net_priorities: dict[str, int] | None
    hugetlb: dict[str, int] | None
    rdma: dict[str, dict[str, int]] | None
    unified: dict[str, str] | None
    devices: list | None

    def controllers(self) -> set[str]:
        """The controllers these limits need, by their v2 names (``io``), plus ``net_cls`` and
        ``net_prio`` (v1 only); device rules need none on v2 (the v1 backend checks its
        ``devices`` hierarchy itself); a ``unified`` key needs the controller it names."""
        need = set()
        for ctrl, fields in NEEDS:
            if any(getattr(self, f) is not None for f in fields):
                need.add(ctrl)
        for key in self.unified or ():
            ctrl = key.partition(".")[0]
            if ctrl != "cgroup":
                need.add(ctrl)
        return need

    def unsupported(self, version: str) -> dict[str, str]:
        """The fields set here that the ``version`` ("v1" or "v2") backend has no file for,
        each with the reason: what ``create``/``update`` would refuse."""
        table = {"v2": V1_ONLY, "v1": V2_ONLY}.get(version, {})
        return {f: why for f, why in table.items() if getattr(self, f) is not None}


NEEDS = (("memory", ("memory_max", "memory_high", "memory_low", "memory_swap",
                      "memory_swappiness", "memory_oom_kill_disable")),
          ("cpu", ("cpu_quota", "cpu_period", "cpu_weight", "cpu_shares", "cpu_idle",
                   "cpu_rt_runtime", "cpu_rt_period")),
          ("cpuset", ("cpuset_cpus", "cpuset_mems")), ("pids", ("pids_max",)),
          ("io", ("io_weight", "io_weight_device", "io_leaf_weight", "io_max")),
          ("net_cls", ("net_classid",)), ("net_prio", ("net_priorities",)),
          ("hugetlb", ("hugetlb",)), ("rdma", ("rdma",)))
"""Controller (v2 name; net_cls and net_prio are v1's) -> the Limits fields it sets."""

V1_ONLY = {
    "memory_swappiness": "cgroup v2 has no memory.swappiness",
    "memory_oom_kill_disable": "cgroup v2 cannot disable the OOM killer",
    "cpu_rt_runtime": "cgroup v2 has no real-time CPU bandwidth (cpu.rt_runtime_us)",
    "cpu_rt_period": "cgroup v2 has no real-time CPU bandwidth (cpu.rt_period_us)",
    "io_leaf_weight": "cgroup v2 has no leaf weight",
    "net_classid": "cgroup v2 has no net_cls controller",
    "net_priorities": "cgroup v2 has no net_prio controller",
}
"""Fields only the v1 backend sets, with the reason v2 cannot."""

V2_ONLY = {
    "memory_high": "a memory high limit needs cgroup v2 (v1 has no memory.high)",
    "unified": "cgroup v2 unified resources cannot be set on cgroup v1",
}
"""Fields only the v2 backend sets, with the reason v1 cannot."""


class Stats(_Record):
    """Usage counters; a field is None when this kernel or backend does not report it.

    memory_current/memory_peak (bytes), cpu_usage_usec/cpu_user_usec/cpu_system_usec,
    pids_current, io_read_bytes/io_write_bytes, oom (times the limit was hit and reclaim
    failed: v2 only) and oom_kill (processes the OOM killer killed in this cgroup).
    """

    __slots__ = ("memory_current", "memory_peak", "cpu_usage_usec", "cpu_user_usec",
                 "cpu_system_usec", "pids_current", "io_read_bytes", "io_write_bytes", "oom",
                 "oom_kill")

    memory_current: int | None
    memory_peak: int | None
    cpu_usage_usec: int | None
    cpu_user_usec: int | None
    cpu_system_usec: int | None
    pids_current: int | None
    io_read_bytes: int | None
    io_write_bytes: int | None
    oom: int | None
    oom_kill: int | None


# ── cgroupfs file operations ─────────────────────────────────────────────────────────────────
# mkdir and rmdir are looked up at call time (base.mkdir) so a fake cgroupfs can replace them.
def mkdir(path: str) -> None:
    os.mkdir(path, 0o755)


def rmdir(path: str) -> None:
    os.rmdir(path)


def remove_made(made: list[str]) -> None:
    """Undo a failed create: remove the directories it made, deepest first."""
    for d in reversed(made):
        try:
            rmdir(d)
        except OSError:
            pass


_HINTS = {
    1: "not permitted: run as root or on a delegated cgroup",
    13: "not permitted: run as root or on a delegated cgroup",
    16: "busy: the cgroup has processes (or child cgroups)",
    22: "the kernel rejected the value",
    28: "no cpus/mems to run on (cpuset empty?)",
}


def fail(action: str, path: str, err: OSError, hint: str = "") -> CgroupError:
    """A CgroupError for a failed file operation, with errno and a hint."""
    hint = hint or _HINTS.get(err.errno or 0, "")
    return CgroupError(f"cgroups: {action} {path}: {err.strerror} (errno {err.errno})"
                       + (f": {hint}" if hint else ""), errno=err.errno, path=path)


def read(path: str) -> str:
    """The content of a cgroup file, stripped."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise fail("read", path, e) from None


def read_opt(path: str) -> str | None:
    """Like ``read`` but None when the file does not exist (an optional kernel feature)."""
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise fail("read", path, e) from None


def int_opt(path: str) -> int | None:
    """An integer file (``max`` reads as UNLIMITED), or None when the file does not exist."""
    text = read_opt(path)
    if text is None or text == "":
        return None
    return UNLIMITED if text == "max" else int(text)


def keyed(text: str | None) -> dict[str, int]:
    """Parse ``key value`` lines (memory.events, cpu.stat, pids.events, ...)."""
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def write(path: str, value: str | int, hint: str = "") -> None:
    """Write one value to a cgroup file in a single write(2)."""
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise fail(f"write {str(value)!r} to", path, e, hint or "this kernel or cgroup lacks "
                   "the file (controller not enabled here?)") from None
    except OSError as e:
        raise fail(f"write {str(value)!r} to", path, e, hint) from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise fail(f"write {str(value)!r} to", path, e, hint) from None
    finally:
        os.close(fd)


def check_update(limits: Limits, version: str = "") -> None:
    """Device rules are set once, when the cgroup is created (v2 attaches a program then);
    a field this backend has no file for is an error (``Limits.unsupported``)."""
    for field, why in limits.unsupported(version).items():
        raise CgroupError(f"cgroups: {field}: {why}")
    if limits.devices is not None:
        raise CgroupError("cgroups: device rules are set when the cgroup is created; they "
                          "cannot be changed on a live cgroup")


def shares_to_weight(shares: int) -> int:
    """A v1 cpu.shares value (2..262144) as a v2 cpu.weight (1..10000): runc's linear map."""
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def rdma_line(dev: str, values: dict[str, int]) -> str:
    """A line of rdma.max: ``mlx5_0 hca_handle=2 hca_object=2000`` (UNLIMITED as max)."""
    items = " ".join(f"{k}={'max' if v == UNLIMITED else v}" for k, v in sorted(values.items()))
    return f"{dev} {items}"


def own_cgroup(proc_cgroup: str, controller: str) -> str:
    """The caller's cgroup path for ``controller`` ("" means the v2 hierarchy), from a
    /proc/PID/cgroup file."""
    for line in read(proc_cgroup).splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue  # not a cgroup line (a damaged copy of the file)
        _, ctrls, path = fields
        if ctrls == controller or (controller and controller in ctrls.split(",")):
            return path
    raise CgroupError(f"cgroups: {proc_cgroup} names no cgroup for "
                      f"{controller or 'the unified (v2) hierarchy'}")


def check_name(name: str) -> str:
    """Validate a cgroup name (relative; may be nested as ``a/b``)."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") or "\n" in p for p in parts):
        raise CgroupError(f"cgroups: bad cgroup name {name!r}: use a relative path such as "
                          "'jailer/c1' without empty, '.' or '..' components")
    return name


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` with a short back-off until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def poll_fd(fd: int, events: int, rearm: Callable[[], object], done: Callable[[], bool],
            timeout: float) -> bool:
    """Wait for ``done`` while sleeping in poll(2) on ``fd`` (a cgroupfs events file or an
    eventfd), calling ``rearm`` after each wake-up so the next poll sleeps again; checks at
    least every 0.25 s in case a notification is missed."""
    import select

    poller = select.poll()
    poller.register(fd, events)
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if poller.poll(min(left, 0.25) * 1000):
            rearm()
    return True


def subtree(top: str) -> Iterator[str]:
    """``top`` and every cgroup below it, deepest first (the order rmdir needs)."""
    for dirpath, _, _ in os.walk(top, topdown=False):
        yield dirpath


# ── the interface ────────────────────────────────────────────────────────────────────────────
class Cgroup:
    """One cgroup (on v1: one directory per controller hierarchy), named relative to a parent
    cgroup, by default the one the calling process is in. Use ``cgroups.open_manager``.

    Lifecycle: ``create(limits)`` → ``add(pid)`` → ``stats()`` / ``update(limits)`` /
    ``freeze()`` / ``thaw()`` / ``wait_for_oom()`` → ``delete()`` (which kills what is left).
    As a context manager it deletes the cgroup on exit.
    """

    version = ""
    dirs: list[str]

    def __init__(self, name: str, root: str) -> None:
        self.name = check_name(name)
        self.root = root

    # Implemented by the backends.
    def create(self, limits: Limits | None = None, *, exist_ok: bool = False) -> Cgroup:
        """Make the cgroup (and any missing intermediate levels of a nested name), set up the
        controllers ``limits`` need and apply them. On failure nothing is left behind."""
        raise NotImplementedError

    def update(self, limits: Limits) -> None:
        """Change the limits named in ``limits`` (not None) on the live cgroup."""
        raise NotImplementedError

    def limits(self) -> Limits:
        """The limits currently in force, read back from the kernel."""
        raise NotImplementedError

    def stats(self) -> Stats:
        """Current usage counters."""
        raise NotImplementedError

    def events(self) -> dict[str, int]:
        """Event counters: memory events (``oom``, ``oom_kill``, ``max``, ``high``... as the
        backend has them) and ``pids_max`` (forks refused at pids.max)."""
        raise NotImplementedError

    def wait_for_oom(self, timeout: float, since: int = 0) -> bool:
        """Block until the OOM killer has killed more than ``since`` processes in this cgroup
        (True) or ``timeout`` seconds pass (False). Sleeps on the kernel's notification."""
        raise NotImplementedError

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process in the cgroup; returns once all are frozen."""
        raise NotImplementedError

    def thaw(self, timeout: float = 5.0) -> None:
        """Let the processes run again."""
        raise NotImplementedError

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the cgroup and its descendants; returns once none is left."""
        raise NotImplementedError

    def delegate(self, uid: int, gid: int = -1, *,
                 delegate_file: str = "/sys/kernel/cgroup/delegate") -> None:
        """Hand the cgroup to ``uid``/``gid``: it may then create sub-cgroups, move its own
        processes between them and limit them, but not change this cgroup's own limits."""
        raise NotImplementedError

    # Shared.
    @property
    def path(self) -> str:
        """The cgroup's directory (v1: in the first hierarchy, normally memory)."""
        return self.dirs[0]

    @property
    def procs_paths(self) -> list[str]:
        """The cgroup.procs files to write a pid (``0`` = the writer) to in order to join it:
        what a launcher opens before fork and writes just before exec."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs)

    def add(self, pid: int = 0) -> None:
        """Move process ``pid`` (0: the calling process) into the cgroup."""
        for p in self.procs_paths:
            write(p, pid)

    def procs(self) -> list[int]:
        """The pids in the cgroup and every cgroup below it."""
        pids: set[int] = set()
        for d in self.dirs:
            if os.path.isdir(d):
                for sub in subtree(d):
                    pids.update(int(p) for p in (read_opt(f"{sub}/cgroup.procs") or "").split())
        return sorted(pids)

    def delete(self, timeout: float = 5.0, *, parents: bool = True) -> None:
        """Kill whatever still runs in the cgroup, remove it with its sub-cgroups (retrying
        while the kernel reports it busy, for up to ``timeout`` seconds) and, with
        ``parents``, any intermediate level of a nested name left empty (not for a path
        someone else chose, e.g. an OCI cgroupsPath: its parents may be theirs). Does
        nothing if the cgroup does not exist."""
        if not self.exists():
            return
        if self.procs():
            self.kill(timeout)
        deadline = time.monotonic() + timeout
        for d in self.dirs:
            for sub in (subtree(d) if os.path.isdir(d) else ()):
                while True:
                    try:
                        rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError as e:
                        if e.errno != 16 or time.monotonic() > deadline:
                            raise fail("remove", sub, e, "processes linger: "
                                       f"{self.procs() or 'none visible'}") from None
                        self._kill_all()
                        time.sleep(0.01)
            for _ in range(self.name.count("/") if parents else 0):  # empty levels
                d = os.path.dirname(d)
                try:
                    rmdir(d)
                except OSError:
                    break

    def _kill_all(self) -> None:
        """SIGKILL every pid listed in the cgroup (a pid gone meanwhile is fine)."""
        for pid in self.procs():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"<cgroups.{type(self).__name__} {self.path}>"
