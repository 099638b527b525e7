"""Safe extraction of untrusted archives (and layers, and directories) into a rootfs.

The rules (what ``tarfile.data_filter`` does and what this module does instead) are in
docs/ARCHITECTURE.md, "Untrusted archives". In short: no ``..``, parents resolved one
component at a time without following symlinks, absolute symlinks kept (they resolve inside
the container), hardlinks only to extracted non-directories, devices skipped and setuid bits
cleared unless allowed, numeric owners kept as root, size and entry limits checked before each
member.

Whiteouts (layer mode, :meth:`RootfsWriter.begin_layer`): ``.wh.NAME`` removes NAME of a
lower layer, ``.wh..wh..opq`` empties its directory of lower-layer content (recursively, like
containerd); per the OCI spec neither touches what the same layer wrote, whatever the order.

Every refusal is an :class:`ExtractError` naming the member and the reason; it aborts the
whole extraction, and the caller (the store's staging directory) removes the partial output.
Neutralisations (stripped ``/``, cleared setuid, skipped device, dropped xattr) go to ``warn``.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from images.archive import READ_ERRORS, TruncatedArchive, read_error, strict
from images.store import ImageError
from images.tree import CHUNK, DirCursor, Entry, remove_at

GiB = 1 << 30
DEFAULT_MAX_BYTES = 64 * GiB
DEFAULT_MAX_ENTRIES = 2_000_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ACLS = ("system.posix_acl_access", "system.posix_acl_default")
_OPAQUE = ".wh..wh..opq"


@dataclass
class Policy:
    """What an extraction may create, and how much of it."""

    allow_devices: bool = False
    keep_setuid: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES
    max_entries: int = DEFAULT_MAX_ENTRIES
    keep_owner: bool | None = None  # None: when running as root


class ExtractError(ImageError):
    """An archive member that was refused (the message names it and says why)."""

    def __init__(self, member: str, reason: str) -> None:
        self.member, self.reason = member, reason
        super().__init__(f"refused archive member {member!r}: {reason}")


class LimitError(ImageError):
    """The archive is bigger than the configured limits (a tar bomb, or a limit too low)."""


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class RootfsWriter:
    """Materialise :class:`~images.tree.Entry` objects under ``dest``, refusing escapes.

    Use as a context manager; call :meth:`finish` after the last entry (it applies the
    deferred directory modes). Limits count across everything written by one writer.
    """

    def __init__(self, dest: str, policy: Policy | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        self.dest = dest
        self.policy = policy or Policy()
        self.keep_owner = (os.geteuid() == 0 if self.policy.keep_owner is None
                           else self.policy.keep_owner)
        self.warn = warn or (lambda msg: None)
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.entries = 0
        self.bytes = 0
        self._cursor = DirCursor(self.root_fd)  # directory fds, a bounded number at any depth
        self._dirs: dict[tuple[str, ...], tuple[int, int]] = {}  # deferred (mode, mtime_ns)
        self._skipped: set[tuple[str, ...]] = set()
        self._layer: set[tuple[str, ...]] | None = None
        self._warned_abs = False

    # ── lifecycle ─────────────────────────────────────────────────────────────────────────
    def __enter__(self) -> RootfsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._cursor.close()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def begin_layer(self) -> None:
        """Following entries form one layer: whiteouts apply to what was there before."""
        self._layer = set()

    def end_layer(self) -> None:
        self._layer = None

    def add_all(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.add(e)

    def finish(self) -> None:
        """Give directories their final mode and mtime (each after everything below it:
        reverse path order, which also keeps the cursor's moves short)."""
        for parts in sorted(self._dirs, reverse=True):
            mode, mtime_ns = self._dirs[parts]
            try:
                fd = self._dir(parts, "/".join(parts), create=False)
            except ExtractError:
                continue
            if fd is None:
                continue
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        self._dirs.clear()

    # ── one entry ─────────────────────────────────────────────────────────────────────────
    def add(self, e: Entry) -> None:
        """Write one entry; ExtractError/LimitError if it is refused."""
        self.entries += 1
        if self.entries > self.policy.max_entries:
            raise LimitError(f"the archive has more than {self.policy.max_entries} entries "
                             f"(at {e.name!r}): refusing it as a possible tar bomb "
                             f"(raise the limit with --max-entries)")
        parts = self._clean(e.name, e.name)
        if self._layer is not None and parts and parts[-1].startswith(".wh."):
            self._whiteout(e, parts)
            return
        if e.kind == "file":
            if e.size < 0:
                raise ExtractError(e.name, "negative size")
            if self.bytes + e.size > self.policy.max_bytes:
                raise LimitError(
                    f"the archive unpacks to more than {human(self.policy.max_bytes)} (at "
                    f"{e.name!r}, {human(e.size)}, after {human(self.bytes)}): refusing it "
                    f"as a possible tar bomb (raise the limit with --max-size)")
        if not parts:
            if e.kind != "dir":
                raise ExtractError(e.name, f"the image root can only be a directory, not a "
                                           f"{e.kind}")
            self._dir_attrs(self.root_fd, (), e)
            return
        try:
            self._add(e, parts)
        except OSError as err:
            raise ExtractError(e.name, f"{err.strerror or err} (errno {err.errno})") from None
        except (OverflowError, ValueError) as err:  # absurd ids, times or device numbers
            raise ExtractError(e.name, f"invalid attributes ({err})") from None
        if self._layer is not None:
            self._mark(parts)

    def _add(self, e: Entry, parts: tuple[str, ...]) -> None:
        kind = e.kind
        if kind in ("chr", "blk") and not self.policy.allow_devices:
            self.warn(f"skipped device node {e.name!r} (pass --allow-devices to keep "
                      f"device nodes)")
            self._skipped.add(parts)
            return
        if kind == "symlink":
            self._check_symlink(e, parts)
        if kind != "hardlink":
            self._place(e, parts, None)
            return
        src = self._hardlink_source(e, parts)
        if src is not None:
            try:
                self._place(e, parts, src)
            finally:
                os.close(src[0])

    def _place(self, e: Entry, parts: tuple[str, ...], src: tuple[int, str] | None) -> None:
        """Create ``e`` at ``parts`` (``src``: a hardlink's (dir fd, name) of its target)."""
        kind = e.kind
        parent = self._dir(parts[:-1], e.name, create=True)
        assert parent is not None
        name = parts[-1]
        existing = _lstat(name, parent)
        if existing is not None:
            if kind == "dir" and stat.S_ISDIR(existing.st_mode):
                fd = self._dir(parts, e.name, create=False)
                assert fd is not None
                self._dir_attrs(fd, parts, e)
                return
            if kind == "hardlink" and src is not None:
                sst = os.lstat(src[1], dir_fd=src[0])
                if (sst.st_dev, sst.st_ino) == (existing.st_dev, existing.st_ino):
                    return  # already that inode
            self._remove(parent, name, existing, parts)
        self._skipped.discard(parts)
        mode = self._mode(e) if kind in ("file", "chr", "blk", "fifo") else 0
        if kind == "file":
            self._write_file(parent, name, e, mode)
        elif kind == "dir":
            os.mkdir(name, 0o700, dir_fd=parent)
            fd = self._dir(parts, e.name, create=False)
            assert fd is not None
            self._dir_attrs(fd, parts, e)
        elif kind == "symlink":
            os.symlink(e.linkname, name, dir_fd=parent)
            self._path_attrs(parent, name, e, None)
        elif kind == "hardlink":
            assert src is not None
            os.link(src[1], name, src_dir_fd=src[0], dst_dir_fd=parent,
                    follow_symlinks=False)
        elif kind in ("chr", "blk", "fifo"):
            ftype = {"chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "fifo": stat.S_IFIFO}[kind]
            os.mknod(name, ftype | 0o600, os.makedev(e.major, e.minor), dir_fd=parent)
            self._path_attrs(parent, name, e, mode)
        else:
            raise ExtractError(e.name, f"unsupported entry type {kind!r}")

    # ── names and links ───────────────────────────────────────────────────────────────────
    def _clean(self, name: str, member: str, what: str = "path") -> tuple[str, ...]:
        if "\0" in name:
            raise ExtractError(member, f"the {what} contains a NUL byte")
        if name.startswith("/"):
            if not self._warned_abs:
                self._warned_abs = True
                self.warn(f"removed the leading '/' from absolute member names (first: "
                          f"{member!r}); they are extracted inside the image")
            name = name.lstrip("/")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise ExtractError(member, f"the {what} {name!r} contains '..' (a path "
                                       f"traversal out of the image)")
        return parts

    @staticmethod
    def _check_symlink(e: Entry, parts: tuple[str, ...]) -> None:
        target = e.linkname
        if not target or "\0" in target:
            raise ExtractError(e.name, "symlink with an empty or invalid target")
        if target.startswith("/"):
            return  # resolved inside the container's root; never followed on the host
        depth = len(parts) - 1
        for c in target.split("/"):
            if c == "..":
                depth -= 1
                if depth < 0:
                    raise ExtractError(e.name, f"symlink target {target!r} points outside "
                                               f"the image (climbs above its root)")
            elif c not in ("", "."):
                depth += 1

    def _hardlink_source(self, e: Entry, parts: tuple[str, ...]) -> tuple[int, str] | None:
        """(an fd of its own of the target's directory, the target's name), or None: skip."""
        lparts = self._clean(e.linkname, e.name, what="hardlink target")
        if not lparts:
            raise ExtractError(e.name, "hardlink to the image root")
        if lparts in self._skipped:
            self.warn(f"skipped {e.name!r}: a hardlink to the skipped {e.linkname!r}")
            self._skipped.add(parts)
            return None
        if lparts == parts:
            return None
        where = self._dir(lparts[:-1], e.name, create=False, what="hardlink target")
        st = _lstat(lparts[-1], where) if where is not None else None
        if st is None:
            raise ExtractError(e.name, f"hardlink target {e.linkname!r} is not in the image "
                                       f"(it must be an earlier member)")
        if stat.S_ISDIR(st.st_mode):
            raise ExtractError(e.name, f"hardlink to the directory {e.linkname!r}")
        assert where is not None
        return os.dup(where), lparts[-1]  # its own fd: the cursor moves on to the link's dir

    # ── directories, resolved without following symlinks ──────────────────────────────────
    def _dir(self, parts: tuple[str, ...], member: str, create: bool,
             what: str = "path") -> int | None:
        """fd of directory ``parts`` (held by the cursor until it moves away or above);
        None if missing and not ``create``."""
        def opener(parent: int, parts: tuple[str, ...], i: int) -> int | None:
            return self._open_dir(parent, parts, i, member, create, what)

        return self._cursor.goto(parts, opener)

    def _open_dir(self, parent: int, parts: tuple[str, ...], i: int, member: str,
                  create: bool, what: str) -> int | None:
        """Open (or make) component ``parts[i]`` in ``parent``, never through a symlink."""
        name = parts[i]
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(name, 0o755, dir_fd=parent)
            if self._layer is not None:
                self._mark(parts[:i + 1])
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            where = "/".join(parts[:i + 1])
            if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
                target = os.readlink(name, dir_fd=parent)
                raise ExtractError(member, f"its {what} goes through the symlink {where!r} "
                                           f"-> {target!r}; writing through symlinks is "
                                           f"refused") from None
            raise ExtractError(member, f"{where!r} in its {what} is not a directory") from None

    def _forget(self, prefix: tuple[str, ...]) -> None:
        """``prefix`` is about to be removed: the cursor lets go of its fds."""
        self._cursor.forget(prefix)

    def _remove(self, parent: int, name: str, st: os.stat_result,
                parts: tuple[str, ...]) -> None:
        self._forget(parts)
        n = len(parts)
        for key in [k for k in self._dirs if k[:n] == parts]:
            del self._dirs[key]
        remove_at(parent, name)

    # ── attributes ────────────────────────────────────────────────────────────────────────
    def _mode(self, e: Entry) -> int:
        mode = e.mode & 0o7777
        if e.kind != "dir" and mode & 0o6000 and not self.policy.keep_setuid:
            bits = " and ".join(b for b, m in (("setuid", 0o4000), ("setgid", 0o2000))
                                if mode & m)
            self.warn(f"cleared the {bits} bit of {e.name!r} (pass --keep-setuid to keep it)")
            mode &= ~0o6000
        return mode

    def _xattrs(self, e: Entry) -> dict[str, bytes]:
        out = {}
        for key, value in e.xattrs.items():
            if key.startswith("user.") or key in _ACLS:
                out[key] = value
            elif key == "security.capability":
                if self.policy.keep_setuid:
                    out[key] = value
                else:
                    self.warn(f"dropped the file capabilities of {e.name!r} (pass "
                              f"--keep-setuid to keep them)")
            else:
                self.warn(f"dropped the extended attribute {key} of {e.name!r} (only user.*, "
                          f"POSIX ACLs and security.capability are restored)")
        return out

    def _set_xattrs(self, target: int | str, e: Entry) -> None:
        for key, value in self._xattrs(e).items():
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                self.warn(f"could not set the extended attribute {key} of {e.name!r}: "
                          f"{err.strerror}")

    def _write_file(self, parent: int, name: str, e: Entry, mode: int) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            self.bytes += e.size
            with open(fd, "wb", closefd=False) as f:
                for offset, chunk in (e.data() if e.data else ()):
                    if offset + len(chunk) > e.size:
                        raise ExtractError(e.name, "holds more data than its header says")
                    if f.tell() != offset:
                        f.seek(offset)
                    f.write(chunk)
            os.ftruncate(fd, e.size)
            if self.keep_owner:
                os.fchown(fd, e.uid, e.gid)
            os.fchmod(fd, mode)  # after chown, which clears setuid bits
            self._set_xattrs(fd, e)  # after chown, which clears security.capability
            ns = int(e.mtime * 1e9)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _path_attrs(self, parent: int, name: str, e: Entry, mode: int | None) -> None:
        """Attributes of a symlink or special file (no fd to hold)."""
        if self.keep_owner:
            os.chown(name, e.uid, e.gid, dir_fd=parent, follow_symlinks=False)
        if mode is not None:  # not a symlink: chmod cannot follow anything
            os.chmod(name, mode, dir_fd=parent)
        if e.xattrs:
            self._set_xattrs(f"/proc/self/fd/{parent}/{name}", e)
        ns = int(e.mtime * 1e9)
        os.utime(name, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)

    def _dir_attrs(self, fd: int, parts: tuple[str, ...], e: Entry) -> None:
        if self.keep_owner:
            os.fchown(fd, e.uid, e.gid)
        self._set_xattrs(fd, e)
        self._dirs[parts] = (e.mode & 0o7777, int(e.mtime * 1e9))

    # ── whiteouts ─────────────────────────────────────────────────────────────────────────
    def _mark(self, parts: tuple[str, ...]) -> None:
        """``parts`` and its parents belong to the current layer (stop at a marked one)."""
        assert self._layer is not None
        for i in range(len(parts), 0, -1):
            prefix = parts[:i]
            if prefix in self._layer:
                return
            self._layer.add(prefix)

    def _whiteout(self, e: Entry, parts: tuple[str, ...]) -> None:
        assert self._layer is not None
        base = parts[-1]
        dparts = parts[:-1]
        if base == _OPAQUE:
            self._opaque(dparts)
            return
        if base.startswith(".wh..wh."):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        if base[4:] in ("", ".", ".."):
            raise ExtractError(e.name, "a whiteout must name a file, not '.' or '..'")
        target = dparts + (base[4:],)
        if target in self._layer:
            return  # a whiteout never hides what its own layer wrote
        fd = self._dir(dparts, e.name, create=False)
        if fd is None:
            return
        st = _lstat(base[4:], fd)
        if st is not None:
            self._remove(fd, base[4:], st, target)

    def _opaque(self, dparts: tuple[str, ...]) -> None:
        """Remove everything below ``dparts`` that the current layer did not write."""
        assert self._layer is not None
        todo = [dparts]  # directories of this layer still to look into (no recursion)
        while todo:
            cur = todo.pop()
            fd = self._dir(cur, "/".join(cur), create=False)
            if fd is None:
                continue
            for child in os.listdir(fd):
                cparts = cur + (child,)
                st = _lstat(child, fd)
                if st is None:
                    continue
                if cparts not in self._layer:
                    self._remove(fd, child, st, cparts)
                elif stat.S_ISDIR(st.st_mode):
                    todo.append(cparts)


def _lstat(name: str, dirfd: int) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return None


# ── tar members as entries ────────────────────────────────────────────────────────────────
def pax_xattrs(headers: dict[str, str]) -> dict[str, bytes]:
    """Extended attributes from PAX records (GNU/star ``SCHILY.xattr.``, libarchive's)."""
    out = {}
    for key, value in headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[13:]] = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            try:
                out[unquote(key[17:])] = base64.b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                continue
    return out


def _tar_regions(tar: tarfile.TarFile, m: tarfile.TarInfo) -> Iterator[tuple[int, bytes]]:
    f = tar.extractfile(m)
    if f is None:
        return
    if m.sparse:
        # stream archives cannot seek the buffered reader; the raw member reader maps
        # offsets to the stored data regions and only ever moves forward
        f = f.raw  # type: ignore[attr-defined]
    regions = m.sparse if m.sparse else [(0, m.size)]
    for offset, size in regions:
        if size == 0:
            continue
        if m.sparse:
            f.seek(offset)
        while size > 0:
            try:
                chunk = f.read(min(CHUNK, size))
            except tarfile.ReadError:  # tarfile's "unexpected end of data"
                chunk = b""
            if not chunk:
                raise TruncatedArchive(f"it ends inside the data of {m.name!r}: truncated")
            yield offset, chunk
            offset += len(chunk)
            size -= len(chunk)


def tar_entries(tar: tarfile.TarFile) -> Iterator[Entry]:
    """The members of an open tar archive (any mode, streams included) as entries.

    A file's data must be consumed before the next entry is taken (stream archives). An
    archive that ends before its end-of-archive marker raises
    :class:`~images.archive.TruncatedArchive` (:func:`~images.archive.strict`).
    """
    for m in strict(tar):
        if m.isreg():
            kind = "file"
        elif m.isdir():
            kind = "dir"
        elif m.issym():
            kind = "symlink"
        elif m.islnk():
            kind = "hardlink"
        elif m.ischr():
            kind = "chr"
        elif m.isblk():
            kind = "blk"
        elif m.isfifo():
            kind = "fifo"
        else:
            raise ExtractError(m.name, f"unsupported tar member type {m.type!r}")
        e = Entry(name=m.name, kind=kind, mode=m.mode, uid=m.uid, gid=m.gid,
                  mtime=float(m.mtime), size=m.size if kind == "file" else 0,
                  linkname=m.linkname, major=m.devmajor, minor=m.devminor,
                  xattrs=pax_xattrs(m.pax_headers))
        if kind == "file":
            e.data = (lambda t=tar, mm=m: _tar_regions(t, mm))
        yield e


def extract_tar(tar: tarfile.TarFile, dest: str, policy: Policy | None = None,
                warn: Callable[[str], None] | None = None) -> RootfsWriter:
    """Extract every member of ``tar`` into the existing directory ``dest``.

    On a refusal, or an archive that is corrupt or ends early (an ImageError then), the entries
    written so far are removed again (``dest`` is left empty when it was empty before) and
    the error is raised. Returns the (closed) writer for its counters.
    """
    before = set(os.listdir(dest))
    writer = RootfsWriter(dest, policy, warn)
    try:
        with writer:
            try:
                writer.add_all(tar_entries(tar))
            except READ_ERRORS as e:
                raise ImageError(read_error(tar.name or "archive", e)) from None
            writer.finish()
    except BaseException:
        from images.store import remove_tree

        for name in set(os.listdir(dest)) - before:
            remove_tree(os.path.join(dest, name))
        raise
    return writer
