"""Small filesystem helpers that never follow a path someone else controls.

Root works in directories a delegated user (or a container) can write: every helper here goes
through directory file descriptors. ``open_dir`` opens a path one component at a time with
``O_NOFOLLOW | O_DIRECTORY`` and checks who owns each component; ``remove_at`` /
``remove_tree`` delete a tree below a dir fd without following a symlink and without crossing
into another filesystem mounted inside it; ``walk_at`` lists a tree the same way.
"""

from __future__ import annotations

import errno
import os
import stat

from jailer.core.errors import JailerError

TYPE_CHECKING = False  # collections.abc only for type checkers (start-path import)
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(JailerError):
    """A path root was asked to use holds a symlink or a component owned by someone else."""


def _owners(owner: int | Iterable[int] | None) -> set[int] | None:
    if owner is None:
        return None
    return {0, owner} if isinstance(owner, int) else {0, *owner}


def open_dir(path: str, owner: int | Iterable[int] | None = None, *,
             dir_fd: int | None = None, create: bool = False, mode: int = 0o755,
             chown: tuple[int, int] | None = None) -> int:
    """An fd of directory ``path``, opened component by component: no component may be a
    symlink and, with ``owner``, each must belong to root or to ``owner`` (a uid or a set).

    A relative ``path`` starts at ``dir_fd``. With ``create``, missing components are made
    (``mode``) and, with ``chown``, given to that uid:gid through their fd. Raises
    ``UnsafePath`` for a symlink or a foreign owner, ``OSError`` otherwise."""
    allowed = _owners(owner)
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise UnsafePath(f"{path}: refusing a path with '..'", errno=errno.EPERM)
    if path.startswith("/"):
        fd = os.open("/", DIR_FLAGS)
    elif dir_fd is not None:
        fd = os.open(".", DIR_FLAGS, dir_fd=dir_fd)
    else:
        fd = os.open(".", DIR_FLAGS)
    try:
        _check(fd, "/", allowed, path)
        for part in parts:
            try:
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
                if chown is not None and os.fstat(nfd).st_uid == os.geteuid():
                    os.fchown(nfd, *chown)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                    raise UnsafePath(f"{path}: {part} is a symlink: refusing to follow it",
                                     errno=errno.ELOOP) from None
                raise
            os.close(fd)
            fd = nfd
            _check(fd, part, allowed, path)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _check(fd: int, part: str, allowed: set[int] | None, path: str) -> None:
    if allowed is None:
        return
    uid = os.fstat(fd).st_uid
    if uid not in allowed:
        raise UnsafePath(f"{path}: {part} belongs to uid {uid}, not to root or uid "
                         f"{max(allowed)}: refusing to use it", errno=errno.EPERM)


def open_parent(path: str, owner: int | Iterable[int] | None = None) -> tuple[int, str]:
    """``(fd of path's directory, last component)``, the directory opened as ``open_dir``
    does."""
    parent, name = os.path.split(os.path.normpath(path))
    if not name or name in (".", ".."):
        raise UnsafePath(f"{path}: no last component to work on", errno=errno.EINVAL)
    return open_dir(parent or ".", owner), name


def walk_at(dir_fd: int, *, dev: int | None = None) -> Iterator[tuple[str, int, list[str],
                                                                      list[str]]]:
    """Like ``os.fwalk(topdown=False)`` but stricter: ``(relative path, dir fd, subdirs,
    others)`` for every directory of the tree, ``dir_fd`` itself (``""``) last. It never
    enters a symlink nor a directory on another filesystem than ``dev`` (default: that of
    ``dir_fd``); such a directory is listed with the others. Each fd is valid only during
    its step."""
    top = os.fstat(dir_fd)
    dev = top.st_dev if dev is None else dev
    yield from _walk(dir_fd, "", dev)


def _walk(top: int, rel: str, dev: int):
    """Iterative (a tree of any depth): one open fd per level of the directory entered."""
    stack = [(top, rel, *_listing(top, dev))]  # (fd, path, subdirs, others, subdirs left)
    try:
        while stack:
            fd, path, dirs, others, left = stack[-1]
            for name in left:
                cfd = _enter(fd, name, dev)
                if cfd is not None:
                    stack.append((cfd, f"{path}/{name}" if path else name,
                                  *_listing(cfd, dev)))
                    break
            else:
                stack.pop()
                try:
                    yield path, fd, dirs, others
                finally:
                    if fd != top:
                        os.close(fd)
    finally:
        for fd, *_ in stack:
            if fd != top:
                os.close(fd)


def _listing(fd: int, dev: int):
    dirs, others = [], []
    for name in os.listdir(fd):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        (dirs if stat.S_ISDIR(st.st_mode) and st.st_dev == dev else others).append(name)
    return dirs, others, iter(dirs)


def _enter(fd: int, name: str, dev: int) -> int | None:
    try:
        cfd = os.open(name, DIR_FLAGS, dir_fd=fd)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None  # swapped or gone since the listing: not ours to follow
        raise
    if os.fstat(cfd).st_dev != dev:
        os.close(cfd)
        return None
    return cfd


def remove_at(dir_fd: int, name: str) -> None:
    """Remove entry ``name`` of ``dir_fd`` and, for a directory, everything under it: never
    follows a symlink (a symlink is unlinked itself), never descends into another filesystem
    mounted below (that raises EBUSY at its mount point's rmdir); missing is fine."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        _ignore_missing(lambda: os.unlink(name, dir_fd=dir_fd))
        return
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a symlink or a file
            _ignore_missing(lambda: os.unlink(name, dir_fd=dir_fd))
            return
        raise
    try:
        here = os.fstat(fd)
        parent = os.fstat(dir_fd)
        if here.st_dev != parent.st_dev:
            raise OSError(errno.EBUSY, "another filesystem is mounted here: not removing it",
                          name)
        _empty(fd, here.st_dev)
    finally:
        os.close(fd)
    _ignore_missing(lambda: os.rmdir(name, dir_fd=dir_fd))


def _empty(fd: int, dev: int) -> None:
    for rel, dfd, dirs, others in walk_at(fd, dev=dev):
        if os.geteuid() != 0:
            st = os.fstat(dfd)
            if st.st_uid == os.geteuid() and st.st_mode & 0o300 != 0o300:
                os.fchmod(dfd, stat.S_IMODE(st.st_mode) | 0o700)  # read-only, but ours
        for name in others:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):  # another filesystem's root: leave it (EBUSY)
                raise OSError(errno.EBUSY, "another filesystem is mounted here: not "
                              "removing it", f"{rel}/{name}" if rel else name)
            _ignore_missing(lambda n=name, d=dfd: os.unlink(n, dir_fd=d))
        for name in dirs:
            try:
                os.rmdir(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise
                remove_at(dfd, name)  # something appeared meanwhile: go again, fd-based


def mounted_under(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """The mount points of this mount namespace at ``path`` or below it (from
    /proc/self/mountinfo, whose escapes are undone), in its order: a bind of a directory of
    the same filesystem has the st_dev of its parent, so os.path.ismount misses it."""
    import re

    path = os.path.normpath(path)
    out = []
    with open(mountinfo, "rb") as f:
        for line in f:
            raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]),
                         line.split(b" ", 5)[4])
            point = os.fsdecode(raw)
            if point == path or point.startswith(path.rstrip("/") + "/"):
                out.append(point)
    return out


def remove_tree(path: str, owner: int | Iterable[int] | None = None, *,
                ignore_errors: bool = False) -> None:
    """Remove ``path`` and everything under it, fd-based (see ``remove_at``); its directory
    is opened as ``open_dir`` does (with ``owner``: only through components of root or that
    user). Missing is fine; with ``ignore_errors`` (a temp dir of our own) nothing raises:
    what cannot be removed safely stays."""
    try:
        fd, name = open_parent(path, owner)
    except FileNotFoundError:
        return
    except (OSError, UnsafePath):
        if ignore_errors:
            return
        raise
    try:
        remove_at(fd, name)
    except OSError:
        if not ignore_errors:
            raise
    finally:
        os.close(fd)


def _ignore_missing(fn) -> None:
    try:
        fn()
    except FileNotFoundError:
        pass


def read_file_at(dir_fd: int, name: str, limit: int = 1 << 20) -> bytes:
    """The contents of regular file ``name`` of ``dir_fd``: never a symlink (ELOOP), never a
    FIFO or device (opened non-blocking, then refused), at most ``limit`` bytes."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        out = b""
        while len(out) <= limit:
            chunk = os.read(fd, 65536)
            if not chunk:
                return out
            out += chunk
        raise OSError(errno.EFBIG, "file too large", name)
    finally:
        os.close(fd)


def write_file_at(dir_fd: int, name: str, data: bytes, *, mode: int = 0o644,
                  owner: tuple[int, int] | None = None, replace: bool = False) -> None:
    """Write ``name`` in ``dir_fd`` atomically as a new file (a temp name made O_EXCL and
    renamed over it, or linked only when absent), owned by ``owner`` via its fd."""
    tmp = f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        if replace:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    finally:
        _ignore_missing(lambda: os.unlink(tmp, dir_fd=dir_fd))


def is_device(path: str) -> bool:
    """Is ``path`` a block or character device node (not following a final symlink)?"""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def read_in_root(root: str, rel: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of ``rel`` resolved inside ``root`` (symlinks stay in it), or None unless it
    is a regular file of at most ``limit`` bytes. O_NONBLOCK: a FIFO there cannot hang us."""
    from jailer.kernel import syscalls as S

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
