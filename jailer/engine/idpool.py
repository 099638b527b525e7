"""A pool of host uid/gid ranges, one per running container, never shared.

Each allocation is a file ``<pool>/<base>`` naming its owner (a process, by pid and start time,
or a named jail). The directory is scanned under an ``flock`` so concurrent starts never pick
the same range; an entry whose owning process is gone is free again, so a SIGKILLed runtime
does not leak its range.
"""

from __future__ import annotations

import fcntl
import os

from jailer.kernel.proc import start_time

POOL_START = 1_000_000_000  # far above any distribution's users and /etc/subuid ranges
RANGE = 65536
SLOTS = 40_000  # POOL_START + SLOTS * RANGE stays below 2**32 - 1


def process_owner(pid: int | None = None) -> str:
    """An owner string naming a process by pid and start time (immune to pid reuse)."""
    pid = pid or os.getpid()
    return f"pid:{pid}:{start_time(pid)}"


def owner_process(owner: str) -> tuple[int, str | None]:
    """The (pid, start time) an owner string names; (0, None) for any other owner."""
    kind, _, rest = (owner or "").partition(":")
    if kind != "pid":
        return 0, None
    pid, _, start = rest.partition(":")
    return (int(pid), start) if pid.isdigit() else (0, None)


def owner_alive(owner: str) -> bool:
    if not owner.startswith("pid:"):
        return True  # owned by something persistent (a named jail): only explicit release
    pid, start = owner_process(owner)
    return pid > 0 and start_time(pid) == start


class IdPool:
    """Allocate and release ``RANGE``-sized host id ranges under ``directory``."""

    def __init__(self, directory: str) -> None:
        self.dir = directory

    def allocate(self, owner: str | None = None) -> int:
        """Return the base of a free range, recorded for ``owner`` (default: this process)."""
        if owner is None:
            owner = process_owner()
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        lock = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                       0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            taken = set()
            for name in os.listdir(self.dir):
                if not name.isdigit():
                    continue
                try:
                    with open(os.path.join(self.dir, name)) as f:
                        who = f.read().strip()
                except FileNotFoundError:
                    continue
                if owner_alive(who):
                    taken.add(int(name))
                else:
                    self._unlink(int(name))
            for slot in range(SLOTS):
                base = POOL_START + slot * RANGE
                if base not in taken:
                    tmp = os.path.join(self.dir, f".{base}.tmp")
                    with open(tmp, "w") as f:
                        f.write(owner + "\n")
                    os.rename(tmp, os.path.join(self.dir, str(base)))
                    return base
            raise RuntimeError(f"id pool {self.dir} is exhausted ({SLOTS} ranges in use)")
        finally:
            os.close(lock)

    def release(self, base: int) -> None:
        """Give a range back (a missing entry is not an error)."""
        self._unlink(base)

    def _unlink(self, base: int) -> None:
        try:
            os.unlink(os.path.join(self.dir, str(base)))
        except FileNotFoundError:
            pass

    def gc(self) -> list[int]:
        """Release ranges whose owning process is gone; return their bases."""
        freed = [base for base, who in self.in_use().items() if not owner_alive(who)]
        for base in freed:
            self._unlink(base)
        return freed

    def in_use(self) -> dict[int, str]:
        """Ranges currently recorded, with their owners."""
        out = {}
        for name in os.listdir(self.dir) if os.path.isdir(self.dir) else ():
            if name.isdigit():
                with open(os.path.join(self.dir, name)) as f:
                    out[int(name)] = f.read().strip()
        return out
