"""Subordinate id ranges (/etc/subuid, /etc/subgid) for jails delegated to a service user.

A delegated jail runs without root: its user namespace is mapped by the setuid helpers
``newuidmap``/``newgidmap`` (package uidmap), which only map ranges listed for the calling user
in /etc/subuid and /etc/subgid. ``register`` gives a user such a range (the same start in both
files, overlapping nothing there nor jailer's own id pool), ``unregister`` takes it back and
``newidmap`` applies it to a process.

Edits are serialized twice: an ``flock`` on a lock file next to the files (jailer against
jailer) and shadow's own ``<file>.lock`` protocol (jailer against useradd, usermod, userdel,
which also write these files). Files are replaced atomically, keeping their mode and owner.
"""

from __future__ import annotations

import fcntl
import os
import time

from jailer.core.errors import JailerError
from jailer.engine.idpool import POOL_START, RANGE, SLOTS
from jailer.kernel import proc

SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
FIRST = 100_000  # where shadow's useradd starts (SUB_UID_MIN) too
STEP = 65536
ID_LIMIT = 2**32 - 1  # (uid_t)-1 is never a valid id
POOL = (POOL_START, POOL_START + SLOTS * RANGE)
STAGE = "user namespace"
_NEEDS_ROOT = "editing /etc/subuid and /etc/subgid needs root"
LOCK_WAIT = 15.0  # seconds, as shadow's tools wait for each other


def _paths() -> tuple[str, str]:
    return (os.environ.get("JAILER_SUBUID", SUBUID), os.environ.get("JAILER_SUBGID", SUBGID))


def _parse(text: str) -> list[tuple[str, int, int]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        start, count = int(parts[1]), int(parts[2])
        if count > 0:
            out.append((parts[0], start, count))
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def ranges(path: str) -> list[tuple[str, int, int]]:
    """Entries of a subuid/subgid file as (user-or-uid, start, count), in file order; blank,
    comment and malformed lines are skipped, a missing file has none."""
    return _parse(_read(path))


def _own(entries, user: str, uid: int, count: int) -> int | None:
    names = {user, str(uid)}
    for name, start, n in entries:
        if name in names and n >= count:
            return start
    return None


def find(user: str, uid: int, count: int = 65536) -> tuple[int, int] | None:
    """The user's existing (uid start, gid start) of >= count ids (entries may name the user or
    its uid); None unless both files have one."""
    subuid, subgid = _paths()
    u = _own(ranges(subuid), user, uid, count)
    g = _own(ranges(subgid), user, uid, count) if u is not None else None
    return None if u is None or g is None else (u, g)


def _free_start(taken: list[tuple[int, int]], count: int) -> int:
    """Lowest FIRST + k*STEP whose [start, start+count) overlaps none of ``taken``."""
    start = FIRST
    busy = sorted(taken + [POOL])
    while start + count <= ID_LIMIT:
        clash = [end for lo, end in busy if lo < start + count and start < end]
        if not clash:
            return start
        end = max(clash)
        start = FIRST + -(-(end - FIRST) // STEP) * STEP  # next step at or above the clash end
    raise JailerError(f"no free range of {count} subordinate ids left in {_paths()[0]}",
                      stage=STAGE, hint="remove unused entries from /etc/subuid and /etc/subgid")


def register(user: str, uid: int, count: int = 65536) -> tuple[int, int, bool]:
    """Ensure the user has ``count`` subordinate uids and gids: reuse an existing range
    (added=False) or append ``user:start:count`` to both files with the lowest start >= 100000
    (step 65536) that overlaps no entry of either file and not jailer's id pool.
    Returns (uid_start, gid_start, added)."""
    if ":" in user or "\n" in user or not user:
        raise ValueError(f"bad user name {user!r}")
    with _Locked():
        subuid, subgid = _paths()
        for path in (subuid, subgid):  # any range of the user's is one it can map
            for name, start, n in ranges(path):
                if name in (user, str(uid)) and start < POOL[1] and POOL[0] < start + n:
                    raise JailerError(
                        f"{path}: {name}:{start}:{n} overlaps jailer's id pool "
                        f"[{POOL[0]}, {POOL[1]})", stage=STAGE,
                        hint=f"remove that line: it would let {user} own other containers' ids")
        have = find(user, uid, count)
        if have is not None:
            return have[0], have[1], False
        texts = {p: _read(p) for p in (subuid, subgid)}
        taken = [(s, s + n) for p in (subuid, subgid) for _, s, n in _parse(texts[p])]
        start = _free_start(taken, count)
        line = f"{user}:{start}:{count}\n"
        done = []
        try:
            for p in (subuid, subgid):
                text = texts[p]
                if text and not text.endswith("\n"):
                    text += "\n"
                _replace(p, text + line)
                done.append(p)
        except OSError as e:
            for p in done:  # all or nothing
                _replace(p, texts[p])
            raise JailerError.from_oserror(STAGE, e) from None
        return start, start, True


def unregister(user: str, uid_start: int, gid_start: int, count: int = 65536) -> None:
    """Remove exactly the lines ``register`` added (``user:start:count``); leave the rest."""
    subuid, subgid = _paths()
    with _Locked():
        for path, start in ((subuid, uid_start), (subgid, gid_start)):
            text = _read(path)
            mine = f"{user}:{start}:{count}"
            lines = text.splitlines(keepends=True)
            keep = [ln for ln in lines if ln.strip() != mine]
            if len(keep) != len(lines):
                _replace(path, "".join(keep))


def _replace(path: str, text: str) -> None:
    """Write ``path`` atomically (temp file + rename), keeping mode and owner."""
    try:
        st = os.stat(path)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = 0o644, None
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.jailer-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        os.write(fd, text.encode())
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _Locked:
    """flock on ``<dir>/.jailer-subid.lock``, then shadow's ``<file>.lock`` for both files."""

    def __enter__(self):
        paths = _paths()
        lock = os.path.join(os.path.dirname(paths[0]) or ".", ".jailer-subid.lock")
        try:
            self.fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise JailerError.from_oserror(STAGE, e, hint=_NEEDS_ROOT) from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.shadow = []
        try:
            for p in paths:
                _shadow_lock(p)
                self.shadow.append(p)
        except OSError as e:
            self.__exit__()
            raise JailerError.from_oserror(STAGE, e, hint=_NEEDS_ROOT) from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for p in reversed(self.shadow):
            try:
                os.unlink(p + ".lock")
            except FileNotFoundError:
                pass
        os.close(self.fd)




def _shadow_lock(path: str) -> None:
    """shadow's lock protocol: link ``<file>.<pid>`` (holding the pid) to ``<file>.lock``;
    a lock whose pid is gone is stale and removed."""
    lock, mine = path + ".lock", f"{path}.{os.getpid()}"
    fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    deadline = time.monotonic() + LOCK_WAIT
    try:
        while True:
            try:
                os.link(mine, lock)
                return
            except FileExistsError:
                pass
            try:
                with open(lock) as f:
                    holder = int(f.read().strip() or 0)
            except (FileNotFoundError, ValueError):
                holder = -1
            if holder == 0 or (holder > 0 and not proc.exists(holder)):
                try:
                    os.unlink(lock)  # stale: its owner died
                except FileNotFoundError:
                    pass
                continue
            if time.monotonic() > deadline:
                raise JailerError(f"{path} is locked by process {holder} ({lock})", stage=STAGE,
                                  hint="another useradd/usermod/jailer is editing it; retry")
            time.sleep(0.02)
    finally:
        os.unlink(mine)


# ── mapping a process ──────────────────────────────────────────────────────────────────────
def _which(prog: str) -> str | None:
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", prog)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    return None


def newidmap(pid: int, uid_start: int, gid_start: int, count: int = 65536) -> None:
    """Map 0..count-1 in pid's user namespace to the subordinate ranges by running the setuid
    helpers newuidmap and newgidmap (both at once). Raise JailerError (stage "user namespace")
    with the helper's message and a hint on failure."""
    jobs = []
    try:
        for prog, start, file in (("newuidmap", uid_start, SUBUID),
                                  ("newgidmap", gid_start, SUBGID)):
            exe = _which(prog)
            if exe is None:
                raise JailerError(f"{prog} not found in PATH", stage=STAGE, errno=2,
                                  hint="is uidmap installed? (apt install uidmap)")
            argv = [prog, str(pid), "0", str(start), str(count)]
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                child = os.posix_spawn(exe, argv, os.environ, file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
            except OSError as e:
                os.close(r)
                raise JailerError.from_oserror(STAGE, e, hint="is uidmap installed?") from None
            finally:
                os.close(w)
            jobs.append((prog, argv, start, file, child, r))
        failures = []
        while jobs:
            prog, argv, start, file, child, r = jobs[0]
            chunks = []
            while chunk := os.read(r, 4096):
                chunks.append(chunk)
            status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            os.close(r)
            jobs.pop(0)
            if status != 0:
                said = b"".join(chunks).decode(errors="replace").strip().replace("\n", "; ")
                failures.append((prog, argv, start, file, status, said))
    finally:
        for *_, child, r in jobs:  # left over by an error: reap them
            os.close(r)
            os.waitpid(child, 0)
    if failures:
        prog, argv, start, file, status, said = failures[0]
        raise JailerError(f"{' '.join(argv)} failed: {said or f'exit status {status}'}",
                          stage=STAGE, syscall=prog,
                          hint=f"is {_whoami()}:{start}:{count} in {file}, and is process "
                               f"{pid} yours and still without a map?")


def _whoami() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
