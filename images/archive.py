"""Reading archives: compression by magic number, tar streams, and bundles of named files.

Compression is recognised from the first bytes, never from the file name: gzip, bzip2 and xz
through the standard library; **zstd through the ``zstd`` command** (Debian package zstd),
run as a filter in a pipe, because Python 3.11 has no zstd module and the command is already
on every Debian machine that has ``dpkg`` >= 1.21 (the optional ``zstandard`` wheel would be
one more dependency for one format).

Every tar archive is read in stream mode (``r|``): one sequential pass, so a layer can be
hashed while it is extracted and a pipe from zstd works the same as a file.

An archive must end with its end-of-archive marker (a zero block: every tar writer, GNU tar,
Python's tarfile, Go's archive/tar, libarchive, writes two). The standard library's reader
stops without a word at a header cut short, at a corrupt header and where the data simply
runs out between two members, so an archive cut in half would import half its files:
:class:`StrictTarInfo` turns each of those into :class:`TruncatedArchive`, as a cut inside a
member's data already is (tarfile's "unexpected end of data"). A compressed stream cut
short shows the same way, as the tar inside it ends early.

A *bundle* is a set of files named by relative paths (an OCI image layout or a ``docker save``
archive), either a directory (:class:`DirBundle`) or a tar archive (:class:`TarBundle`).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from images.store import ImageError

MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
         (b"BZh", "bzip2"))
READ_ERRORS = (tarfile.TarError, EOFError, OSError)
try:  # the decompressors' own error types
    import lzma
    import zlib

    READ_ERRORS += (zlib.error, lzma.LZMAError)
except ImportError:  # pragma: no cover
    pass


class TruncatedArchive(tarfile.ReadError):
    """The archive ends early, or where a header should be there is none."""


class StrictTarInfo(tarfile.TarInfo):
    """A TarInfo whose reading refuses an archive that ends before its end-of-archive
    marker (pass it as ``tarinfo=`` to ``tarfile.open``; :func:`strict` sets it)."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        at = tarfile_.offset
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EmptyHeaderError:
            raise TruncatedArchive(f"it ends at byte {at} without the end-of-archive "
                                   f"marker: truncated") from None
        except tarfile.TruncatedHeaderError:
            raise TruncatedArchive(f"it ends inside the member header at byte {at}: "
                                   f"truncated") from None
        except tarfile.InvalidHeaderError as e:
            raise TruncatedArchive(f"no valid member header at byte {at} ({e}): corrupt "
                                   f"or truncated") from None


def strict(tar: tarfile.TarFile) -> tarfile.TarFile:
    """``tar`` with :class:`StrictTarInfo` reading its next headers."""
    if not issubclass(tar.tarinfo, StrictTarInfo):
        tar.tarinfo = StrictTarInfo
    return tar


def describe(e: BaseException, kind: str | None = None) -> str:
    """One line for a read error (tarfile's "r:*" lists one reason per method tried)."""
    lines = [ln.strip() for ln in (str(e) or type(e).__name__).splitlines() if ln.strip()]
    if len(lines) > 1:
        want = {"gzip": "gz", "bzip2": "bz2", "xz": "xz"}.get(kind or "", "tar")
        for ln in lines[1:]:
            if ln.startswith(f"- method {want}:"):
                return ln.split(":", 1)[1].strip()
        return lines[-1]
    return lines[0] if lines else type(e).__name__


def sniff(head: bytes) -> str | None:
    """"gzip", "zstd", "xz", "bzip2", "tar" (uncompressed ustar) or None."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def sniff_file(path: str) -> str | None:
    with open(path, "rb") as f:
        return sniff(f.read(512))


class HashingReader(io.RawIOBase):
    """Pass bytes through, computing their sha256 and reporting progress."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None] | None = None) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.count = 0
        self.progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha256.update(data)
        self.count += n
        if self.progress and n:
            self.progress(n)
        return n

    def drain(self) -> None:
        """Read what is left, so the digest covers the whole input."""
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


@contextmanager
def tar_stream(raw: BinaryIO, what: str) -> Iterator[tarfile.TarFile]:
    """An uncompressed or gzip/bzip2/xz/zstd tar read from ``raw`` in one pass.

    Errors (not a tar, corrupt, truncated) become one-line ImageErrors naming ``what``.
    """
    buf = raw if hasattr(raw, "peek") else io.BufferedReader(raw, 1 << 20)  # type: ignore
    head = buf.peek(512)[:512]  # type: ignore[attr-defined]
    kind = sniff(head)
    if not head:
        raise ImageError(f"{what} is empty")
    proc = feeder = None
    try:
        if kind == "zstd":
            zstd = shutil.which("zstd")
            if not zstd:
                raise ImageError(f"{what} is zstd-compressed but the zstd command is missing "
                                 f"(apt-get install zstd)")
            proc = subprocess.Popen([zstd, "-dcq"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            feeder = threading.Thread(target=_feed, args=(buf, proc.stdin), daemon=True)
            feeder.start()
            tar = tarfile.open(fileobj=proc.stdout, mode="r|", tarinfo=StrictTarInfo)
        else:
            tar = tarfile.open(fileobj=buf, mode="r|*", tarinfo=StrictTarInfo)
        with tar:
            yield tar
    except ImageError:
        raise
    except READ_ERRORS as e:
        raise ImageError(read_error(what, e, kind, _zstd_error(proc))) from None
    finally:
        if proc is not None:
            proc.stdout.close()  # type: ignore[union-attr]
            if feeder is not None:
                feeder.join()
            proc.wait()
            proc.stderr.close()  # type: ignore[union-attr]


def read_error(what: str, e: BaseException, kind: str | None = None, detail: str = "") -> str:
    """The one line for an archive that could not be read to its end."""
    detail = detail or describe(e, kind)
    if detail == "unexpected end of data":  # tarfile's, for a member's data cut short
        detail = "it ends inside the data of a member: truncated"
    return f"{what}: not a valid or complete tar archive ({detail})"


def _feed(src: BinaryIO, dst: BinaryIO) -> None:
    try:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        try:
            dst.close()
        except OSError:
            pass


def _zstd_error(proc: subprocess.Popen | None) -> str:
    if proc is None or proc.poll() in (None, 0):
        return ""
    err = proc.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
    return f"zstd: {err.splitlines()[-1]}" if err else ""


# ── bundles: OCI layouts and docker-save archives ────────────────────────────────────────
def clean_rel(rel: str, what: str) -> str:
    """A bundle-relative path with no '..' and no leading '/' (ImageError otherwise)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or rel.startswith("/"):
        raise ImageError(f"{what}: invalid path {rel!r} in the image's metadata")
    return "/".join(parts)


class DirBundle:
    """Files of a directory, opened without following symlinks."""

    def __init__(self, root: str) -> None:
        self.root = root

    def has(self, rel: str) -> bool:
        try:
            self.open(rel).close()
            return True
        except ImageError:
            return False

    def open(self, rel: str) -> BinaryIO:
        rel = clean_rel(rel, self.root)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            parts = rel.split("/")
            for p in parts[:-1]:
                nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
                os.close(fd)
                fd = nfd
            ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                          dir_fd=fd)
        except OSError as e:
            raise ImageError(f"{self.root}: cannot open {rel}: {e.strerror}") from None
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            os.close(ffd)
            raise ImageError(f"{self.root}: {rel} is not a regular file")
        os.set_blocking(ffd, True)
        return os.fdopen(ffd, "rb")

    def size(self, rel: str) -> int:
        with self.open(rel) as f:
            return os.fstat(f.fileno()).st_size

    def close(self) -> None:
        pass


class TarBundle:
    """Files of a tar archive (uncompressed, gzip, bzip2 or xz), read in place."""

    def __init__(self, path: str) -> None:
        self.path = path
        if sniff_file(path) == "zstd":
            raise ImageError(f"{path}: zstd-compressed image archives are not supported "
                             f"(decompress it first: zstd -d)")
        try:
            self.tar = tarfile.open(path, "r:*", tarinfo=StrictTarInfo)
            self.members = {}
            for m in self.tar.getmembers():
                try:
                    self.members[clean_rel(m.name, path)] = m
                except ImageError:
                    continue
        except READ_ERRORS as e:
            raise ImageError(read_error(path, e, sniff_file(path))) from None

    def names(self) -> list[str]:
        return list(self.members)

    def has(self, rel: str) -> bool:
        return clean_rel(rel, self.path) in self.members

    def open(self, rel: str) -> BinaryIO:
        name = clean_rel(rel, self.path)
        for _ in range(8):  # follow links between members (docker save shares layers so)
            m = self.members.get(name)
            if m is None:
                raise ImageError(f"{self.path}: {rel} is missing from the archive")
            if m.issym():
                base = name.rsplit("/", 1)[0] if "/" in name else ""
                name = clean_rel(os.path.normpath(os.path.join(base, m.linkname))
                                 if not m.linkname.startswith("/") else m.linkname, self.path)
            elif m.islnk():
                name = clean_rel(m.linkname, self.path)
            elif m.isreg():
                f = self.tar.extractfile(m)
                assert f is not None
                return f  # type: ignore[return-value]
            else:
                break
        raise ImageError(f"{self.path}: {rel} is not a regular file in the archive")

    def size(self, rel: str) -> int:
        m = self.members.get(clean_rel(rel, self.path))
        return m.size if m is not None else 0

    def close(self) -> None:
        self.tar.close()
