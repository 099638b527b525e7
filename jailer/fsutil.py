"""Small filesystem helpers for the start path (``shutil`` costs ~16 ms of import here)."""

from __future__ import annotations

import os
import stat


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything under it; never follows symlinks; missing is fine."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _ignore_missing(os.unlink, os.path.join(root, name))
        for name in dirs:
            p = os.path.join(root, name)
            _ignore_missing(os.unlink if os.path.islink(p) else os.rmdir, p)
    _ignore_missing(os.rmdir, path)


def _ignore_missing(fn, path: str) -> None:
    try:
        fn(path)
    except FileNotFoundError:
        pass


def read_in_root(root: str, rel: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of ``rel`` resolved inside ``root`` (symlinks stay in it), or None unless it
    is a regular file of at most ``limit`` bytes. O_NONBLOCK: a FIFO there cannot hang us."""
    from jailer import syscalls as S

    try:
        rfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = S.Syscalls().openat2(rfd, rel.lstrip("/"), os.O_RDONLY | os.O_CLOEXEC
                                  | os.O_NOCTTY | os.O_NONBLOCK,
                                  S.RESOLVE_IN_ROOT | S.RESOLVE_NO_MAGICLINKS)
    except (OSError, ImportError):
        return None
    finally:
        os.close(rfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return os.read(fd, limit + 1)[:limit]
    finally:
        os.close(fd)
