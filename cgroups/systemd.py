"""The systemd cgroup driver (cgroup v2 only), as runc's and crun's ``--systemd-cgroup``: the
container's cgroup is a transient scope that systemd makes over D-Bus (``StartTransientUnit``,
``Delegate=yes``, the container's pid), with the limits systemd has unit properties for set as
properties, and the rest written by the v2 backend in the scope's delegated directory.

    unit = parse_cgroups_path("system.slice:jailer:c1")    # -> jailer-c1.scope in system.slice
    cg = SystemdCgroup(unit).create(limits, pid=pid)        # the scope needs its first pid
    cg.update(Limits(memory_max=...)); cg.stats(); cg.freeze(); cg.delete()  # stop + reset

OCI ``linux.cgroupsPath`` for this driver is ``slice:prefix:name`` (runc's form): the scope
``prefix-name.scope`` in ``slice`` (empty: system.slice); a name ending in ``.slice`` makes
the container's cgroup that slice itself. Needs systemd 244 or later (AllowedCPUs).
"""

from __future__ import annotations

import os

from . import base
from .base import UNLIMITED, CgroupError, Limits, check_update, shares_to_weight
from .v2 import V2Cgroup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .dbus import Bus, Signals

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
INFINITY = 2**64 - 1
"""systemd's "no limit" for a ``t`` (uint64) property (USEC_INFINITY, CGROUP_LIMIT_MAX)."""
UNIT_NAME_MAX = 255
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-\\")
_FORM = "slice:prefix:name (e.g. system.slice:jailer:c1)"
_GONE = (2, 19)  # ENOENT, ENODEV: the files of a cgroup that is being removed


# ── cgroupsPath and slices ───────────────────────────────────────────────────────────────────
class UnitPath(base._Record):
    """Where a container goes: ``unit`` (``prefix-name.scope`` or a ``.slice``), the ``slice``
    it is placed in and ``path``, its cgroup relative to the hierarchy's root
    (``/system.slice/jailer-c1.scope``)."""

    __slots__ = ("unit", "slice", "path")

    unit: str
    slice: str
    path: str

    @property
    def is_slice(self) -> bool:
        return self.unit.endswith(".slice")


def _bad(spec: str, why: str) -> CgroupError:
    return CgroupError(f"cgroups: bad systemd cgroupsPath {spec!r}: {why}")


def _check_part(spec: str, what: str, part: str) -> None:
    """A piece of a unit name: systemd's characters only, no '..'."""
    bad = sorted(set(part) - _UNIT_CHARS)
    if bad:
        raise _bad(spec, f"the {what} {part!r} has characters a systemd unit name cannot have "
                         f"({''.join(bad)!r}; use letters, digits, '_', '.', '-')")
    if ".." in part or part.startswith("."):
        raise _bad(spec, f"the {what} {part!r} may not start with '.' or contain '..'")


def expand_slice(slice_name: str, spec: str | None = None) -> str:
    """A slice unit's cgroup path: ``a-b-c.slice`` is ``/a.slice/a-b.slice/a-b-c.slice`` (each
    dash a level, as systemd names slices); ``-.slice`` is the root slice, ``/``."""
    spec = slice_name if spec is None else spec
    stem = slice_name.removesuffix(".slice")
    if stem == slice_name or not stem or "/" in slice_name:
        raise _bad(spec, f"{slice_name!r} is not a slice name (a unit name ending in .slice, "
                         "without '/', such as system.slice or machine-web.slice)")
    if stem == "-":
        return "/"
    _check_part(spec, "slice", stem)
    parts = stem.split("-")
    if "" in parts:
        raise _bad(spec, f"the slice {slice_name!r} has an empty level (a leading, trailing or "
                         "doubled '-')")
    return "".join(f"/{'-'.join(parts[:i + 1])}.slice" for i in range(len(parts)))


def parse_cgroups_path(spec: str, default_name: str = "", *, prefix: str = "jailer",
                       default_slice: str = "system.slice") -> UnitPath:
    """An OCI ``linux.cgroupsPath`` for the systemd driver: ``slice:prefix:name`` → the scope
    ``prefix-name.scope`` (``name.scope`` with an empty prefix) in ``slice`` (empty:
    ``default_slice``); a name ending in ``.slice`` is that slice (a child of ``slice``).
    An empty ``spec`` means ``:prefix:default_name``. Malformed: one CgroupError line."""
    if not spec:
        if not default_name:
            raise CgroupError("cgroups: the systemd cgroup driver needs a cgroupsPath of the "
                              f"form {_FORM} or a container name")
        spec = f":{prefix}:{default_name}"
    parts = spec.split(":")
    if len(parts) != 3:
        raise _bad(spec, f"expected {_FORM}, got {len(parts)} part(s)")
    slice_name, unit_prefix, name = parts
    slice_name = slice_name or default_slice
    slice_path = expand_slice(slice_name, spec)
    if not name:
        raise _bad(spec, "the name (after the second ':') is empty")
    if name.endswith(".slice"):
        path = expand_slice(name, spec)
        if os.path.dirname(path) != slice_path:
            raise _bad(spec, f"the slice {name!r} is not a child of {slice_name!r} (systemd "
                             f"would place it at {path})")
        return UnitPath(unit=name, slice=slice_name, path=path)
    _check_part(spec, "prefix", unit_prefix)
    _check_part(spec, "name", name)
    unit = f"{unit_prefix}-{name}.scope" if unit_prefix else f"{name}.scope"
    if len(unit) > UNIT_NAME_MAX:
        raise _bad(spec, f"the unit name {unit!r} is longer than {UNIT_NAME_MAX} characters")
    return UnitPath(unit=unit, slice=slice_name, path=f"{slice_path.rstrip('/')}/{unit}")


# ── unit properties ──────────────────────────────────────────────────────────────────────────
Property = tuple[str, tuple[str, object]]
"""One entry of an ``a(sv)`` array: (name, (D-Bus signature, value))."""


def cpu_mask(cpus: str) -> bytes:
    """A CPU or memory-node list (``0-3,6``) as systemd's bitmask bytes (AllowedCPUs): bit
    ``n % 8`` of byte ``n // 8`` is CPU ``n``."""
    bits = 0
    for item in cpus.strip().split(","):
        lo, dash, hi = item.strip().partition("-")
        if not lo.isdigit() or (dash and (not hi.isdigit() or int(hi) < int(lo))):
            raise CgroupError(f"cgroups: {cpus!r} is not a CPU list (use e.g. 0-3,6)")
        for n in range(int(lo), int(hi if dash else lo) + 1):
            bits |= 1 << n
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def _t(value: int) -> tuple[str, int]:
    return ("t", INFINITY if value == UNLIMITED else value)


def _quota_per_sec(quota: int, period: int) -> int:
    """CPUQuotaPerSecUSec for ``quota`` per ``period`` µs, rounded up to systemd's 1 % steps
    (10 ms per second), as runc does, so the scope never gets less than asked for."""
    if quota == UNLIMITED:
        return INFINITY
    per_sec = quota * 1_000_000 // period
    return -(-per_sec // 10_000) * 10_000


def _memory_properties(lim: Limits) -> list[Property]:
    props: list[Property] = []
    for field, prop in (("memory_max", "MemoryMax"), ("memory_high", "MemoryHigh"),
                        ("memory_low", "MemoryLow")):
        if getattr(lim, field) is not None:
            props.append((prop, _t(getattr(lim, field))))
    if lim.memory_swap is not None:
        if lim.memory_swap == UNLIMITED:
            props.append(("MemorySwapMax", _t(UNLIMITED)))
        elif lim.memory_max is not None and lim.memory_max != UNLIMITED:
            props.append(("MemorySwapMax", ("t", max(lim.memory_swap - lim.memory_max, 0))))
        # else: the v2 backend computes it from the scope's memory.max (or refuses)
    return props


def _cpu_properties(lim: Limits) -> list[Property]:
    props: list[Property] = []
    weight = lim.cpu_weight
    if weight is None and lim.cpu_shares is not None:
        weight = shares_to_weight(lim.cpu_shares)
    if weight is not None:
        props.append(("CPUWeight", ("t", weight)))
    if lim.cpu_period is not None:
        props.append(("CPUQuotaPeriodUSec", ("t", lim.cpu_period)))
    if lim.cpu_quota is not None:
        props.append(("CPUQuotaPerSecUSec",
                      ("t", _quota_per_sec(lim.cpu_quota, lim.cpu_period or 100_000))))
    if lim.cpuset_cpus is not None:
        props.append(("AllowedCPUs", ("ay", cpu_mask(lim.cpuset_cpus))))
    if lim.cpuset_mems is not None:
        props.append(("AllowedMemoryNodes", ("ay", cpu_mask(lim.cpuset_mems))))
    return props


_UNIFIED = {"memory.max": "MemoryMax", "memory.high": "MemoryHigh", "memory.low": "MemoryLow",
            "memory.min": "MemoryMin", "memory.swap.max": "MemorySwapMax",
            "pids.max": "TasksMax", "cpu.weight": "CPUWeight", "io.weight": "IOWeight"}
"""``unified`` files whose value systemd also sets from a property (and would write back)."""


def _unified_properties(unified: dict[str, str]) -> list[Property]:
    """The unit properties for the ``unified`` entries systemd manages (runc converts the same
    ones), so that systemd's next write of the unit's cgroup does not undo them."""
    props: list[Property] = []
    for key, value in unified.items():
        v = value.strip().removeprefix("default ") if key == "io.weight" else value.strip()
        if key == "io.weight" and not v.isdigit():
            continue  # per-device weights: cgroupfs only
        try:
            if key in _UNIFIED:
                props.append((_UNIFIED[key], ("t", INFINITY if v == "max" else int(v))))
            elif key == "cpu.max":
                quota, _, period = v.partition(" ")
                per = int(period or 100_000)
                props += [("CPUQuotaPeriodUSec", ("t", per)), ("CPUQuotaPerSecUSec", (
                    "t", _quota_per_sec(UNLIMITED if quota == "max" else int(quota), per)))]
            elif key in ("cpuset.cpus", "cpuset.mems"):
                prop = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                props.append((prop, ("ay", cpu_mask(v))))
        except ValueError:
            raise CgroupError(f"cgroups: unified resource {key!r}: {value!r} is not a value "
                              "for it") from None
    return props


def limit_properties(lim: Limits) -> list[Property]:
    """The unit properties for the limits systemd has properties for (MemoryMax, MemoryHigh,
    MemoryLow, MemorySwapMax, CPUWeight, CPUQuotaPerSecUSec and CPUQuotaPeriodUSec, AllowedCPUs,
    AllowedMemoryNodes, TasksMax, IOWeight, and the ``unified`` files of these); the others
    are only written to cgroupfs."""
    props = _memory_properties(lim) + _cpu_properties(lim)
    if lim.pids_max is not None:
        props.append(("TasksMax", _t(lim.pids_max)))
    if lim.io_weight is not None:
        props.append(("IOWeight", ("t", lim.io_weight)))
    return props + _unified_properties(lim.unified or {})


def unit_properties(unit: UnitPath, pid: int | None, lim: Limits,
                    description: str = "") -> list[Property]:
    """The properties of a new transient unit: description, placement (a scope: ``Slice=``,
    ``Delegate=yes`` and its pid; a slice: ``Wants=`` its parent), accounting for the
    controllers the limits use, no default dependencies, then ``limit_properties``."""
    props: list[Property] = [("Description", ("s", description or f"jailer {unit.unit}"))]
    if unit.is_slice:
        props.append(("Wants", ("as", [unit.slice])))
    else:
        props += [("Slice", ("s", unit.slice)), ("Delegate", ("b", True))]
        if pid is not None:
            props.append(("PIDs", ("au", [pid])))
    props += [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
              ("TasksAccounting", ("b", True)), ("IOAccounting", ("b", True)),
              ("DefaultDependencies", ("b", False))]
    return props + limit_properties(lim)


# ── the systemd manager over D-Bus ───────────────────────────────────────────────────────────
def wait_job(signals: Signals, job: str, timeout: float) -> str:
    """The result of ``job`` (an object path) from the JobRemoved signals collected by
    ``signals``: ``done``, ``canceled``, ``timeout``, ``failed``, ``dependency`` or
    ``skipped``; other jobs' signals are skipped. TimeoutError after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(job)
        body = signals.next(left)  # JobRemoved(u id, o job, s unit, s result)
        if len(body) == 4 and body[1] == job:
            return body[3]


class Systemd:
    """The few calls of systemd's manager API the driver uses, on a ``Bus``."""

    def __init__(self, bus: Bus, timeout: float = 30.0) -> None:
        self.bus = bus
        self.timeout = timeout
        self.subscribed = False

    @classmethod
    def connect(cls, address: str | None = None) -> Systemd:
        """systemd on the system bus; CgroupError (one line) when it cannot be reached."""
        from .dbus import Bus

        return cls(Bus.system(address))

    def call(self, method: str, signature: str = "", *args: object) -> tuple:
        from .dbus import DBusError

        try:
            return self.bus.call(SYSTEMD, MANAGER_PATH, MANAGER, method, signature, args,
                                 self.timeout)
        except DBusError as e:
            if e.name == "org.freedesktop.DBus.Error.ServiceUnknown":
                raise CgroupError(f"cgroups: systemd is not on the D-Bus system bus at "
                                  f"{self.bus.address} (is systemd PID 1?)") from None
            raise

    def _job(self, method: str, signature: str, *args: object) -> str:
        """Call a method that queues a job and return the job's result (JobRemoved, subscribed
        to before the call so that a fast job is not missed)."""
        from .dbus import DBusError

        with self.bus.signals(SYSTEMD, MANAGER, "JobRemoved") as signals:
            if not self.subscribed:  # systemd sends its signals only to subscribers
                try:
                    self.call("Subscribe")
                except DBusError as e:
                    if not e.name.endswith(".AlreadySubscribed"):
                        raise
                self.subscribed = True
            (job,) = self.call(method, signature, *args)
            try:
                return wait_job(signals, job, self.timeout)
            except TimeoutError:
                return "timeout"

    def start_transient(self, unit: str, props: list[Property]) -> str:
        """StartTransientUnit in mode "fail"; the job's result."""
        return self._job("StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", props, [])

    def set_properties(self, unit: str, props: list[Property]) -> None:
        """SetUnitProperties (runtime only: nothing written to /etc)."""
        self.call("SetUnitProperties", "sba(sv)", unit, True, props)

    def stop(self, unit: str) -> str:
        """StopUnit in mode "replace"; the job's result."""
        return self._job("StopUnit", "ss", unit, "replace")

    def reset_failed(self, unit: str) -> None:
        """ResetFailedUnit: forget a failed unit, so that its name can be used again."""
        self.call("ResetFailedUnit", "s", unit)

    def start_unit(self, unit: str, props: list[Property]) -> None:
        """Start the transient ``unit`` and wait for its job (a failed leftover of that name
        is forgotten and the start tried once more); one CgroupError line when systemd
        refuses or the job does not end "done", and then nothing of it is left."""
        from .dbus import DBusError

        for retry in (True, False):
            try:
                result = self.start_transient(unit, props)
                break
            except DBusError as e:
                if e.name == "org.freedesktop.systemd1.UnitExists" and retry:
                    self._forget(unit)  # a failed leftover of an earlier run: once
                    continue
                if e.name == "org.freedesktop.systemd1.UnitExists":
                    raise CgroupError(f"cgroups: the systemd unit {unit} already exists (another "
                                      "container with that cgroupsPath? pick another name or "
                                      f"stop it: systemctl stop {unit})") from None
                raise CgroupError(f"cgroups: systemd refused to start {unit}: {e.text} "
                                  f"({e.name})") from None
        if result != "done":
            try:  # a job that timed out may yet have started it
                self.stop_unit(unit)
            except CgroupError:
                pass
            raise CgroupError(f"cgroups: systemd could not start {unit}: its job ended "
                              f"'{result}' (journalctl -u {unit} says why)")

    def stop_unit(self, unit: str) -> None:
        """Stop ``unit`` (waiting for the job) and forget it if it failed; a unit that is not
        loaded is no error."""
        from .dbus import DBusError

        try:
            self.stop(unit)
        except DBusError as e:
            if e.name != "org.freedesktop.systemd1.NoSuchUnit":
                raise CgroupError(f"cgroups: systemd could not stop {unit}: {e.text} "
                                  f"({e.name})") from None
        self._forget(unit)

    def _forget(self, unit: str) -> None:
        from .dbus import DBusError

        try:
            self.reset_failed(unit)
        except DBusError:
            pass  # not loaded or not failed: nothing to forget

    def close(self) -> None:
        self.bus.close()


# ── the manager ──────────────────────────────────────────────────────────────────────────────
class SystemdCgroup(V2Cgroup):
    """A container cgroup that systemd owns: a transient scope (or slice), its directory the
    scope's delegated cgroup; stats, events, freeze, kill and limits read back are the v2
    backend's on that directory. ``systemd`` is a ``Systemd`` (connected on first use)."""

    def __init__(self, unit: UnitPath, *, root: str = "/sys/fs/cgroup",
                 systemd: Systemd | None = None, description: str = "") -> None:
        if not os.path.exists(f"{root}/cgroup.controllers"):
            raise CgroupError(f"cgroups: the systemd cgroup driver needs pure cgroup v2 (the "
                              f"unified hierarchy mounted at {root}); this host's cgroups are "
                              "v1 or hybrid: use the cgroupfs driver")
        parent, leaf = os.path.split(unit.path)
        super().__init__(leaf, root=root, parent=parent)
        self.base = os.path.join(root, parent.strip("/")) if parent.strip("/") else root
        self.dirs = [os.path.join(self.base, leaf)]  # even before systemd makes the slice
        self.unit = unit
        self.description = description
        self._systemd = systemd

    @property
    def systemd(self) -> Systemd:
        if self._systemd is None:
            self._systemd = Systemd.connect()
        return self._systemd

    def create(self, limits: Limits | None = None, *, exist_ok: bool = False,
               pid: int | None = None) -> SystemdCgroup:
        """Start the unit with ``pid`` in it (a scope needs one: systemd refuses an empty
        scope) and the limits as properties, then write them in its directory too (exact
        values, and what systemd has no property for). On failure the unit is gone."""
        limits = limits or Limits()
        check_update(limits.replace(devices=None), self.version)
        if exist_ok and self.exists():
            self.update(limits.replace(devices=None))
            return self
        if pid is None and not self.unit.is_slice:
            raise CgroupError(f"cgroups: the systemd scope {self.unit.unit} needs the pid of "
                              "its first process (create(limits, pid=...))")
        props = unit_properties(self.unit, pid, limits, self.description)
        self.systemd.start_unit(self.unit.unit, props)
        try:
            if self.unit.is_slice and pid is not None:
                self.add(pid)
            self.update(limits.replace(devices=None))
            if limits.devices is not None:
                from .ebpf import apply

                apply(self.path, limits.devices)
        except BaseException:
            self.systemd.stop_unit(self.unit.unit)
            raise
        return self

    def update(self, limits: Limits) -> None:
        """Set the limits as unit properties (those systemd has), then in the directory."""
        check_update(limits, self.version)
        lim = limits
        if lim.memory_swap not in (None, UNLIMITED) and lim.memory_max is None:
            lim = lim.replace(memory_max=base.int_opt(f"{self.path}/memory.max"))  # as v2
        props = limit_properties(lim)
        if props:
            from .dbus import DBusError

            try:
                self.systemd.set_properties(self.unit.unit, props)
            except DBusError as e:
                raise CgroupError(f"cgroups: systemd refused the limits of {self.unit.unit}: "
                                  f"{e.text} ({e.name})") from None
        super().update(limits)

    def procs(self) -> list[int]:
        """As the v2 backend's, but a scope that systemd removes meanwhile (it does as soon as
        the scope is empty) has none."""
        try:
            return super().procs()
        except CgroupError as e:
            if e.errno in _GONE:
                return []
            raise

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL everything in the scope (systemd then removes the emptied scope's cgroup,
        which is fine here)."""
        try:
            super().kill(timeout)
        except CgroupError as e:
            if e.errno not in _GONE:
                raise

    def delete(self, timeout: float = 5.0, *, parents: bool = False) -> None:
        """Kill what still runs, stop the unit (waiting for the job), reset it if it failed,
        and remove whatever directory is left of it. Does nothing if it is gone already."""
        if self.exists() and self.procs():
            self.kill(timeout)
        self.systemd.stop_unit(self.unit.unit)
        super().delete(timeout, parents=False)

    def close(self) -> None:
        """Close the D-Bus connection (opened again when needed)."""
        if self._systemd is not None:
            self._systemd.close()
            self._systemd = None

    def __repr__(self) -> str:
        return f"<cgroups.SystemdCgroup {self.unit.unit} {self.path}>"


# ── a scope of our own (jailer's own starts on a systemd host) ───────────────────────────────
HOLD = "hold"
"""The held scope's own cgroup for its holder process (``<scope>/hold``)."""


def _holder(pidfd: int) -> None:
    """The holder, in a fork: nothing open but the pidfd of the process it holds the scope
    for; it exits when that process does (or at SIGTERM, as when the scope is stopped)."""
    import select
    import signal

    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)  # not the runtime's handlers: dies at TERM
        os.setsid()  # out of the terminal's signals (^C is for the container)
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, pidfd)
        os.closerange(pidfd + 1, 65536)
        poll = select.poll()
        poll.register(pidfd, select.POLLIN)
        while not poll.poll():
            pass
    finally:
        os._exit(0)


class HeldScope:
    """A transient scope (``Delegate=yes``) that a small process of its own holds, from its
    own leaf ``<scope>/hold``, until the process it is held for exits (or ``stop()``): so
    cgroups made below the scope can have controllers (the no-internal-processes rule), and
    they outlive their processes (stats and OOM counts stay readable after the last one has
    exited). As BenchExec and ``systemd-run --scope`` do, for starts whose own cgroup holds
    processes (a login session, a service). ``path``: the scope's cgroup from the root."""

    def __init__(self, unit: UnitPath, *, root: str = "/sys/fs/cgroup",
                 systemd: Systemd | None = None, description: str = "") -> None:
        self.unit, self.root, self.description = unit, root, description
        self._systemd = systemd
        self.holder = 0
        self.started = False

    @property
    def path(self) -> str:
        return self.unit.path

    @property
    def systemd(self) -> Systemd:
        if self._systemd is None:
            self._systemd = Systemd.connect()
        return self._systemd

    def start(self, held_for: int | None = None) -> HeldScope:
        """Fork the holder (held for ``held_for``, default this process) and start the scope
        with it, then move it to its own leaf. On failure nothing is left."""
        pidfd = os.pidfd_open(held_for or os.getpid())
        try:
            self.holder = os.fork()
            if self.holder == 0:
                _holder(pidfd)
        finally:
            os.close(pidfd)
        try:
            self.systemd.start_unit(self.unit.unit, unit_properties(
                self.unit, self.holder, Limits(), self.description))
            self.started = True
            leaf = os.path.join(self.root, self.unit.path.strip("/"), HOLD)
            base.mkdir(leaf)
            base.write(f"{leaf}/cgroup.procs", self.holder)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the scope (its holder and whatever is left in it get systemd's SIGTERM, then
        SIGKILL) and wait for the job; reap the holder. Does nothing twice."""
        try:
            if self.started:
                self.systemd.stop_unit(self.unit.unit)
                self.started = False
        finally:
            if self.holder:
                try:
                    os.kill(self.holder, 9)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(self.holder, 0)
                except ChildProcessError:
                    pass  # (reaped by a subreaper's wait for any child)
                self.holder = 0
            if self._systemd is not None:
                self._systemd.close()
                self._systemd = None

