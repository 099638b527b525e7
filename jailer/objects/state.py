"""Runtime state of a jail or container: ``<run>/<name>/state.json``, written atomically under
the jail's lock, and never trusted alone.

``observe()`` tells what is true now by checking: the recorded pid must still be the same
process (pid + start time, same boot), else the jail has stopped whatever the file says (the
runtime crashed, the jail was kill -9'd, or the machine rebooted). A paused jail is one whose
freezer says so. ``cgroup()`` reopens the cgroup a start recorded; ``freezer_file()`` names
the file ``observe`` reads for paused.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

from jailer.core.ids import valid_id
from jailer.engine.idpool import owner_process
from jailer.kernel import proc
from jailer.objects.status import ACTIVE, LIVE, Status

STATUSES = tuple(s.value for s in Status)


class Lock:
    """An exclusive flock on ``<dir>/lock``, for every change of a jail's state."""

    def __init__(self, directory: str, *, create: bool = True) -> None:
        self.dir = directory
        self.create = create
        self.fd = -1

    def __enter__(self) -> Lock:
        if self.create:
            _makedirs(self.dir)
        self.fd = os.open(os.path.join(self.dir, "lock"),
                          os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read(directory: str) -> dict | None:
    """The recorded state, or None when there is none (never started, or removed)."""
    try:
        with open(os.path.join(directory, "state.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return None  # a torn write cannot happen (rename), but a foreign file could


def read_untrusted(directory: str, owner: int) -> dict | None:
    """A state file in a directory a user (``owner``) can write, read as root may: the path
    opened component-wise (no symlinks, components of root or ``owner`` only), the file
    never a FIFO, device or symlink, and only its plain fields kept (see ``untrusted``)."""
    from jailer.kernel import fsutil

    try:
        fd = fsutil.open_dir(directory, owner)
    except (OSError, fsutil.UnsafePath):
        return None
    try:
        st = json.loads(fsutil.read_file_at(fd, "state.json", 1 << 16))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return untrusted(st) if isinstance(st, dict) else None


def untrusted(st: dict) -> dict:
    """What root may take from a state file someone else wrote: plain values of the right
    type; never a path (cgroup, freezer) and never an id that is not ``valid_id``."""
    out: dict = {}
    for key, typ in (("name", str), ("status", str), ("pid", int), ("pid_start", str),
                     ("boot_id", str), ("monitor", str), ("hostname", str),
                     ("exit_code", int), ("restarts", int), ("started", (int, float)),
                     ("finished", (int, float))):
        v = st.get(key)
        if isinstance(v, typ) and not isinstance(v, bool):
            out[key] = v
    if out.get("status") not in STATUSES:
        out["status"] = "stopped"
    if valid_id(st.get("id")):
        out["id"] = st["id"]
    return out


def _makedirs(directory: str) -> None:
    if os.geteuid() == 0:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return
    from jailer.core import paths

    paths.check_run_dir(directory, make=True)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths.check_run_dir(directory)


def write(directory: str, state: dict) -> None:
    _makedirs(directory)
    path = os.path.join(directory, "state.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    os.rename(tmp, path)


def update(directory: str, **changes: object) -> dict:
    st = read(directory) or {}
    st.update(changes)
    write(directory, st)
    return st


def read_exit(directory: str) -> tuple[int | None, float | None]:
    """What the monitor recorded when pid 1 ended: (shell-style code, time) or (None, None)."""
    try:
        with open(os.path.join(directory, "exit")) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return None, None
    kind, _, value = lines[0].partition(" ")
    try:
        code = int(value) + (128 if kind == "signal" else 0)
        when = float(lines[1]) if len(lines) > 1 and lines[1] else None
    except ValueError:
        return None, None
    return code, when


def observe(directory: str, st: dict | None = None) -> dict:
    """The state with ``status`` corrected to what is true now (the file is not changed)."""
    st = dict(st if st is not None else (read(directory) or {}))
    status = st.get("status", "stopped")
    if status in LIVE:
        if not proc.alive(st.get("pid", 0), st.get("pid_start"), st.get("boot_id")):
            if status == "creating" and monitor_alive(st):
                return st  # still being set up by a live runtime
            st["status"] = "stopped"
            code, when = read_exit(directory)
            if code is not None and st.get("exit_code") is None:
                st["exit_code"], st["finished"] = code, when
        elif status in ACTIVE and st.get("freezer"):
            st["status"] = "paused" if frozen(st["freezer"]) else "running"
    return st


def monitor_pid(st: dict) -> int:
    """The pid of the runtime or monitor the state names (0: none)."""
    return owner_process(st.get("monitor") or "")[0]


def monitor_alive(st: dict) -> bool:
    """Is the process that supervises (or is cleaning up after) the jail still there?"""
    return proc.alive(*owner_process(st.get("monitor") or ""), st.get("boot_id"))


def frozen(path: str) -> bool:
    """Does the freezer file (v1 ``freezer.state``, v2 ``cgroup.freeze``) say frozen?"""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return False
    return text in ("FROZEN", "FREEZING", "1")


def freezer_file(cg) -> str:
    """The file that tells whether ``cg`` is frozen ("" without a cgroup or a freezer)."""
    if cg is None:
        return ""
    paths = getattr(cg, "paths", None)
    if paths:  # v1
        return os.path.join(paths["freezer"], "freezer.state") if "freezer" in paths else ""
    return os.path.join(cg.path, "cgroup.freeze")


def cgroup(directory: str, st: dict):
    """The cgroup the start recorded in ``st`` (None without one), reopened below the
    cgroups that start saved in ``<directory>/cgroup.parent`` (or from the hierarchy's root
    for an OCI cgroupsPath taken as runc takes it)."""
    if not st.get("cgroup"):
        return None
    import cgroups

    return cgroups.open_manager(st["cgroup"], proc_cgroup=os.path.join(
        directory, "cgroup.parent"), parent="/" if st.get("cgroup_root") else None)


def now() -> float:
    return round(time.time(), 3)
