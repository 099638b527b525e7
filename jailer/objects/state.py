"""Runtime state of a jail or container: ``<run>/<name>/state.json``, written atomically under
the jail's lock, and never trusted alone.

``read()`` checks every field (``checked``): a file that is there but unreadable or malformed
raises ``StateError`` and is never taken as "stopped". ``observe()`` tells what is true now:
the recorded pid must still be the same process (pid + start time, same boot, all on record),
else the start is over whatever the file says (the runtime crashed, the jail was kill -9'd,
or the machine rebooted). A paused jail is one whose cgroup's freezer says so.
``cgroup()`` reopens the cgroup a start recorded; ``freezer_file()`` names its freezer file.
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


class StateError(Exception):
    """A state file that cannot be read or does not hold a state (says what is wrong)."""


# Every field a state may hold, with its type; nothing else is kept. None means unset.
FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str, "id": str, "kind": str, "status": str, "pid": int, "pid_start": str,
    "boot_id": str, "monitor": str, "hostname": str, "image": str, "ip": str, "net": str,
    "host_if": str, "exit_code": int, "restarts": int, "started": (int, float),
    "finished": (int, float), "stop_requested": bool, "uid_base": int, "cgroup": str,
    "cgroup_root": bool, "start_id": str, "bundle": str, "rootfs": str, "created": str,
    "owner": str, "ociVersion": str, "annotations": dict, "hooks": dict, "systemd": str}
# the plain fields root takes from a state file a user wrote (never a path or a cgroup)
PLAIN = ("name", "status", "pid", "pid_start", "boot_id", "monitor", "hostname", "exit_code",
         "restarts", "started", "finished")


def read(directory: str) -> dict | None:
    """The recorded state, checked (``checked``); None when there is none (never started, or
    removed). Raises ``StateError`` for a file that is there but unreadable or malformed:
    that is never taken as "stopped"."""
    try:
        with open(os.path.join(directory, "state.json"), "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"cannot read {directory}/state.json: {e.strerror}") from None
    try:
        st = json.loads(raw)
    except ValueError:
        raise StateError(f"{directory}/state.json is not JSON (truncated?)") from None
    return checked(st, f"{directory}/state.json")


def checked(st: object, where: str = "state") -> dict:
    """``st`` if it is a state: a JSON object whose known fields have their type (None:
    unset, dropped), a known status, ids that ``valid_id`` accepts and a cgroup name without
    ``..``; unknown fields are dropped. Else ``StateError``."""
    if not isinstance(st, dict):
        raise StateError(f"{where} holds a JSON {type(st).__name__}, not an object")
    out: dict = {}
    for key, typ in FIELDS.items():
        v = st.get(key)
        if v is None:
            continue
        if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
            raise StateError(f"{where}: {key!r} is {json.dumps(v)[:40]}, not "
                             f"{_type_name(typ)}")
        out[key] = v
    if out.setdefault("status", "stopped") not in STATUSES:
        raise StateError(f"{where}: unknown status {out['status'][:40]!r}")
    for key in ("id", "start_id"):
        if key in out and not valid_id(out[key]):
            raise StateError(f"{where}: {key!r} {out[key][:40]!r} is not an id")
    if "cgroup" in out and not valid_cgroup(out["cgroup"]):
        raise StateError(f"{where}: 'cgroup' {out['cgroup'][:40]!r} is not a cgroup name")
    if out.setdefault("pid", 0) < 0:
        raise StateError(f"{where}: 'pid' {out['pid']} is negative")
    return out


def valid_cgroup(name: str) -> bool:
    """A cgroup name a start makes: relative or absolute, its components never ``.`` or
    ``..``, no NUL or newline."""
    parts = name.strip("/").split("/")
    return bool(name.strip("/")) and "\0" not in name and "\n" not in name \
        and all(p not in ("", ".", "..") for p in parts)


def _type_name(typ: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             dict: "an object"}
    return names[typ[0] if isinstance(typ, tuple) else typ]


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
    """What root may take from a state file someone else wrote: the ``PLAIN`` fields of the
    right type; never a path (cgroup) and never an id that is not ``valid_id``."""
    out: dict = {}
    for key in PLAIN:
        v = st.get(key)
        if isinstance(v, FIELDS[key]) and not isinstance(v, bool):
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
    """The state with ``status`` corrected to what is true now (the file is not changed):
    the recorded pid must still be the process that was recorded (pid, start time and boot
    all on record), else the start is over. Raises ``StateError`` as ``read`` does."""
    st = dict(st if st is not None else (read(directory) or {"status": "stopped", "pid": 0}))
    status = st["status"]
    if status in LIVE:
        if not verified(st):
            if status == "creating" and monitor_alive(st):
                return st  # still being set up by a live runtime
            st["status"] = "stopped"
            code, when = read_exit(directory)
            if code is not None and st.get("exit_code") is None:
                st["exit_code"], st["finished"] = code, when
        elif status in ACTIVE:
            st["status"] = "paused" if frozen(freezer_file(cgroup(directory, st))) \
                else "running"
    return st


def verified(st: dict) -> bool:
    """Is the state's pid the very process its start recorded (pid, start time and boot id
    all on record and matching)? Only such a pid may be signalled by its number."""
    return bool(st.get("pid_start") and st.get("boot_id")) and \
        proc.alive(st.get("pid", 0), st["pid_start"], st["boot_id"])


def monitor_pid(st: dict) -> int:
    """The pid of the runtime or monitor the state names (0: none)."""
    return owner_process(st.get("monitor") or "")[0]


def monitor_alive(st: dict) -> bool:
    """Is the process that supervises (or is cleaning up after) the jail still there (its
    pid and start time on record, the same boot)?"""
    pid, start = owner_process(st.get("monitor") or "")
    return bool(start and st.get("boot_id")) and proc.alive(pid, start, st["boot_id"])


def frozen(path: str) -> bool:
    """Does the freezer file (v1 ``freezer.state``, v2 ``cgroup.freeze``) say frozen?"""
    if not path:
        return False
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
    for an OCI cgroupsPath taken as runc takes it); a systemd scope (``st["systemd"]``, its
    ``slice:prefix:name``) through the systemd driver, so that delete stops it."""
    if not st.get("cgroup") or not valid_cgroup(st["cgroup"]):
        return None
    import cgroups

    if st.get("systemd"):
        try:
            cg = cgroups.open_systemd(st["systemd"], st.get("id", ""))
            if cg.path == os.path.join(cg.root, st["cgroup"]):
                return cg
        except cgroups.CgroupError:
            pass  # (not the scope it recorded: the cgroup it names, as any other)

    return cgroups.open_manager(st["cgroup"], proc_cgroup=os.path.join(
        directory, "cgroup.parent"), parent="/" if st.get("cgroup_root") else None)


def now() -> float:
    return round(time.time(), 3)
