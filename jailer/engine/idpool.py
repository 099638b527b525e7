"""A pool of host uid/gid ranges, one per running container, never shared.

Each allocation is a file ``<pool>/<base>`` naming its owner (a process, by pid and start time,
or a named jail). The directory is scanned under an ``flock`` so concurrent starts never pick
the same range; an entry whose owning process is gone is free again, so a SIGKILLed runtime
does not leak its range.
"""

from __future__ import annotations

import fcntl
import os

from jailer.core.errors import JailerError
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
        lock = self._lock()
        try:
            return self._allocate(owner or process_owner(), self._entries())
        finally:
            os.close(lock)

    def claim(self, base: object, owner: str) -> int:
        """The range ``owner`` holds: the one the pool has for it (whatever ``base`` says),
        else ``base`` if that is a range of the pool nobody holds (recorded for ``owner``
        then), else a new one. A ``base`` another owner holds is never used: ``PoolError``."""
        lock = self._lock()
        try:
            entries = self._entries()
            mine = sorted(b for b, who in entries.items() if who == owner)
            if mine:
                return mine[0]
            if base in entries and owner_alive(entries[base]):
                raise PoolError(f"uid range {base} belongs to {entries[base]}, not {owner}")
            if not _pool_base(base):
                return self._allocate(owner, entries)
            self._record(base, owner)
            return base
        finally:
            os.close(lock)

    def _allocate(self, owner: str, entries: dict[int, str]) -> int:
        """A free range for ``owner`` (under the lock); entries of dead owners are freed."""
        taken = set()
        for base, who in entries.items():
            if owner_alive(who):
                taken.add(base)
            else:
                self._unlink(base)
        for slot in range(SLOTS):
            base = POOL_START + slot * RANGE
            if base not in taken:
                self._record(base, owner)
                return base
        raise RuntimeError(f"id pool {self.dir} is exhausted ({SLOTS} ranges in use)")

    def release_owner(self, owner: str) -> list[int]:
        """Give back every range recorded for ``owner``; return their bases."""
        lock = self._lock()
        try:
            mine = [b for b, who in self._entries().items() if who == owner]
            for base in mine:
                self._unlink(base)
            return mine
        finally:
            os.close(lock)

    def _lock(self) -> int:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        lock = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                       0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    def _entries(self) -> dict[int, str]:
        out = {}
        for name in os.listdir(self.dir) if os.path.isdir(self.dir) else ():
            if name.isdigit():
                try:
                    with open(os.path.join(self.dir, name)) as f:
                        out[int(name)] = f.read().strip()
                except FileNotFoundError:
                    continue
        return out

    def _record(self, base: int, owner: str) -> None:
        tmp = os.path.join(self.dir, f".{base}.tmp")
        with open(tmp, "w") as f:
            f.write(owner + "\n")
        os.rename(tmp, os.path.join(self.dir, str(base)))

    def release(self, base: int) -> None:
        """Give a range back (a missing entry is not an error)."""
        self._unlink(base)

    def _unlink(self, base: int) -> None:
        try:
            os.unlink(os.path.join(self.dir, str(base)))
        except FileNotFoundError:
            pass

    def gc(self, alive=owner_alive) -> list[int]:
        """Release ranges whose owner ``alive`` says is gone (default: a process that
        ended); return their bases."""
        if not os.path.isdir(self.dir):
            return []
        lock = self._lock()
        try:
            freed = [base for base, who in self._entries().items() if not alive(who)]
            for base in freed:
                self._unlink(base)
            return freed
        finally:
            os.close(lock)

    def in_use(self) -> dict[int, str]:
        """Ranges currently recorded, with their owners."""
        return self._entries()


class PoolError(JailerError):
    """A range asked for that the pool says is someone else's."""


def _pool_base(base: object) -> bool:
    """Is ``base`` the first id of one of the pool's ranges?"""
    return isinstance(base, int) and not isinstance(base, bool) and POOL_START <= base \
        < POOL_START + SLOTS * RANGE and (base - POOL_START) % RANGE == 0
