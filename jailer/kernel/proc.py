"""Processes by pid, read from /proc: start time, liveness (pid + start time + boot id, never a
zombie), signals that ignore a process already gone, kill-and-reap, and the processes of a
pid namespace."""

from __future__ import annotations

import os


def boot_id() -> str:
    """This boot's id: a recorded pid means nothing after a reboot."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22), as recorded in state."""
    fields = _stat_fields(pid)
    return fields[19].decode() if fields and len(fields) > 19 else None


def alive(pid: object, start: str | None, boot: str | None) -> bool:
    """Is ``pid`` still the process that was recorded (same start time, same boot), and not
    a zombie waiting for its parent?"""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 \
            or (boot and boot != boot_id()):
        return False
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return False
    return fields[19].decode() == start if start else True


def exists(pid: int) -> bool:
    """Is there a process ``pid`` (of anyone: EPERM counts as there)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def kill(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; a process already gone is not an error (False). Never a
    pid <= 0 (a process group, or everyone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_and_reap(pid: int, sig: int = 9) -> None:
    """Signal a child of ours and wait for it; one that is gone already is fine."""
    kill(pid, sig)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def cmdline(pid: int) -> str | None:
    """The command line as one string (arguments joined by spaces), None once gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def ns_pid(pid: int) -> int:
    """``pid``'s number in its own (innermost) pid namespace; 0 once gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return 0


def namespace_processes(pid: int) -> list[dict]:
    """Every process in ``pid``'s pid namespace: host pid, pid inside, host uid, state and
    command (``[name]`` for a kernel-style one without a command line), by pid inside."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        cmd = cmdline(int(entry))
        if cmd is None:
            continue
        out.append({"pid": int(entry), "nspid": int(fields["NSpid"].split()[-1]),
                    "uid": int(fields["Uid"].split()[0]), "state": fields["State"].split()[0],
                    "command": cmd or f"[{fields['Name'].strip()}]"})
    return sorted(out, key=lambda p: p["nspid"])
