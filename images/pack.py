"""Packed images (one read-only file, as VMs keep disks) and tar exports.

* :func:`pack` writes ``<image>/<name>.squashfs`` (mksquashfs, zstd) or ``<name>.erofs``
  (mkfs.erofs, lz4hc) from the image's rootfs, keeping owners, modes and xattrs, and records
  it in meta.json as ``packed: {format: file name}``. The runtime mounts it read-only from a
  loop device (:mod:`images.loop`) as the lower layer: :func:`images.store.packed_rootfs`.
* :func:`export` writes the rootfs as a PAX tar (numeric owners, xattrs as
  ``SCHILY.xattr.*``, hardlinks; gzip/xz/zstd by the output's suffix; "-" for stdout) that
  ``jailer image import`` reads back with the same digest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from typing import BinaryIO

from images.progress import Progress
from images.store import ImageError, Store
from images.tree import Entry, dir_entries

TOOLS = {"squashfs": ("mksquashfs", "squashfs-tools"), "erofs": ("mkfs.erofs", "erofs-utils")}
_PCT = re.compile(rb"(\d+)/(\d+)\s+\d+%")


def pack(store: Store, name: str, fmt: str, progress: Progress | None = None) -> str:
    """Pack image ``name`` into one ``fmt`` file (squashfs or erofs); return its path."""
    progress = progress or Progress()
    rootfs = store.rootfs(name)
    if fmt not in TOOLS:
        raise ImageError(f"unknown pack format {fmt!r} (choose from {', '.join(TOOLS)})")
    tool, package = TOOLS[fmt]
    exe = shutil.which(tool) or next((p for p in (f"/usr/bin/{tool}", f"/usr/sbin/{tool}")
                                      if os.path.exists(p)), None)
    if not exe:
        raise ImageError(f"{tool} is not installed (apt-get install {package})")
    meta = store.meta(name)
    out_name = f"{name}.{fmt}"
    final = os.path.join(store.path(name), out_name)
    tmp = os.path.join(store.path(name), f".{out_name}.{os.getpid()}.tmp")
    if fmt == "squashfs":
        cmd = [exe, rootfs, tmp, "-noappend", "-comp", "zstd", "-xattrs"]
    else:
        cmd = [exe, "-zlz4hc", tmp, rootfs]
    progress.start(f"pack {name} ({fmt})", meta.get("files") or None, unit="")
    try:
        try:
            _run(cmd, fmt, progress)
        except ImageError:
            if fmt == "erofs":
                _check_path_max(rootfs)
            raise
        os.chmod(tmp, 0o444)
        os.rename(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        progress.done()
    meta = store.meta(name)
    meta.setdefault("packed", {})[fmt] = out_name
    store.write_meta(name, meta)
    return final


PATH_MAX = 4096


def _check_path_max(rootfs: str) -> None:
    """After mkfs.erofs failed: say so plainly when a path is too long for it. It works on
    whole path strings (the kernel takes at most PATH_MAX bytes); mksquashfs does not."""
    longest = max((len(e.name.encode("utf-8", "surrogateescape"))
                   for e in dir_entries(rootfs)), default=0)
    full = len(os.path.abspath(rootfs).encode()) + 1 + longest
    if full >= PATH_MAX:
        raise ImageError(f"mkfs.erofs cannot pack this image: a path in it is {full} bytes "
                         f"long on the host, over PATH_MAX ({PATH_MAX}), and mkfs.erofs "
                         f"works on whole paths: pack it with --format squashfs")


def _spawn(cmd: list[str]) -> subprocess.Popen:
    """Start ``cmd`` with its stack limit raised to the hard limit: mkfs.erofs recurses
    once per directory level (a tree 2,000 deep overflows the usual 8 MiB)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    try:
        resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))
    except (ValueError, OSError):
        soft = hard
    try:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    finally:
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))


def _run(cmd: list[str], fmt: str, progress: Progress) -> None:
    proc = _spawn(cmd)
    out = b""
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
            out = (out + chunk)[-65536:]
            if fmt == "squashfs":
                found = _PCT.findall(chunk)
                if found:
                    progress.update(int(found[-1][0]), int(found[-1][1]))
            else:
                progress.advance(chunk.count(b"Processing "))
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0:
        lines = [ln for ln in re.split(rb"[\r\n]", out) if ln.strip()]
        last = lines[-1].decode(errors="replace").strip() if lines else "?"
        how = f"exit {rc}" if rc > 0 else f"killed by signal {-rc}"
        raise ImageError(f"{os.path.basename(cmd[0])} failed ({how}): {last[:300]}")


# ── export ────────────────────────────────────────────────────────────────────────────────
class _Regions:
    """A file-like reader of an entry's logical content (holes read as zeros)."""

    def __init__(self, e: Entry) -> None:
        self.it = iter(e.data() if e.data else ())
        self.size = e.size
        self.pos = 0
        self.pending: tuple[int, bytes] | None = None

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self.size - self.pos
        if self.pos >= self.size or n == 0:
            return b""
        if self.pending is None:
            self.pending = next(self.it, (self.size, b""))
        off, data = self.pending
        if self.pos < off:  # in a hole
            k = min(n, off - self.pos)
            self.pos += k
            return bytes(k)
        data = data[self.pos - off:]
        k = min(n, len(data))
        out = data[:k]
        self.pos += k
        if k == len(data):
            self.pending = None
        return out


def _tarinfo(e: Entry) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(e.name or ".")
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
               "fifo": tarfile.FIFOTYPE}[e.kind]
    ti.mode, ti.uid, ti.gid, ti.mtime = e.mode, e.uid, e.gid, int(e.mtime)
    ti.uname = ti.gname = ""
    ti.size = e.size if e.kind == "file" else 0
    ti.linkname = e.linkname
    ti.devmajor, ti.devminor = e.major, e.minor
    ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                      for k, v in e.xattrs.items()}
    return ti


def write_tar(rootfs: str, out: BinaryIO, compression: str = "",
              progress: Progress | None = None) -> None:
    """Write ``rootfs`` as a PAX tar to the binary stream ``out``."""
    progress = progress or Progress()
    with tarfile.open(fileobj=out, mode=f"w|{compression}", format=tarfile.PAX_FORMAT) as tar:
        for e in dir_entries(rootfs):
            tar.addfile(_tarinfo(e), _Regions(e) if e.kind == "file" else None)
            progress.advance(e.size)


def export(store: Store, name: str, output: str, progress: Progress | None = None) -> str:
    """Export image ``name``'s rootfs to ``output`` (.tar, .tar.gz, .tar.xz, .tar.zst, or "-"
    for stdout); the file appears only when complete. Returns ``output``."""
    progress = progress or Progress()
    rootfs = store.rootfs(name)
    progress.start(f"export {name}", store.meta(name).get("size") or None)
    compression = ("gz" if output.endswith((".gz", ".tgz")) else "xz" if output.endswith(".xz")
                   else "zst" if output.endswith((".zst", ".tzst")) else "")
    try:
        if output == "-":
            write_tar(rootfs, sys.stdout.buffer, "", progress)
            sys.stdout.buffer.flush()
            return output
        parent = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(parent):
            raise ImageError(f"cannot write {output}: {parent} is not a directory")
        tmp = os.path.join(parent, f".{os.path.basename(output)}.{os.getpid()}.tmp")
        try:
            if compression == "zst":
                _export_zstd(rootfs, tmp, progress)
            else:
                with open(tmp, "wb") as f:
                    write_tar(rootfs, f, compression, progress)
            os.rename(tmp, output)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return output
    except OSError as e:
        raise ImageError(f"cannot write {output}: {e.strerror or e}") from None
    finally:
        progress.done()


def _export_zstd(rootfs: str, tmp: str, progress: Progress) -> None:
    zstd = shutil.which("zstd")
    if not zstd:
        raise ImageError("writing .zst needs the zstd command (apt-get install zstd)")
    with open(tmp, "wb") as f:
        proc = subprocess.Popen([zstd, "-q", "-c"], stdin=subprocess.PIPE, stdout=f)
        try:
            assert proc.stdin is not None
            write_tar(rootfs, proc.stdin, "", progress)
            proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.wait() != 0:
            raise ImageError("zstd failed while compressing the export")
