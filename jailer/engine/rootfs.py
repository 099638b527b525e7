"""The guard on a jail's root used in place.

At ``--level jail`` a rootfs directory is bind-mounted idmapped: the jail's root (a private
host uid range) shows as uid 0 of the files, so what it creates or chowns appears on the host
owned by host uid 0..65535 -- a setuid-root binary left in the host's filesystem, which any
host user who can reach it then runs as root. jailer keeps idmapped in-place roots (they are
what makes a jail a FreeBSD-style jail: the files stay where they are, and stay usable from the
host) and makes them unreachable instead, as podman keeps its idmapped roots under 0700
storage: a writable in-place root is used only when every directory from ``/`` down to it is
root's and not writable by others, and one of them above the root denies search to other
users (0700, or 0710 with group root; no ACL). A read-only root (``--read-only``) may be
anywhere: nothing can be created in it.
"""

from __future__ import annotations

import os
import stat

from jailer.core.errors import JailerError

_O_PATH = 0o10000000


def _acl(fd: int) -> bool:
    try:
        os.getxattr(f"/proc/self/fd/{fd}", "system.posix_acl_access")
    except OSError:
        return False
    return True


def check_inplace_root(rootfs: str) -> None:
    """Raise one line with the fix unless a writable in-place root at ``rootfs`` is out of
    other users' reach (see the module doc). Each component is opened with O_NOFOLLOW below
    the one before it, so what is checked is the directory chain itself. (The bind is then
    made by path: every directory above the root is root's alone, so no other user can
    swap it in between.)"""
    real = os.path.realpath(rootfs)
    parts = [p for p in real.split("/") if p]
    fd = os.open("/", _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    guard = ""
    where = "/"
    try:
        for i, name in enumerate(["", *parts]):
            if name:
                nfd = os.open(name, _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
                os.close(fd)
                fd = nfd
                where = os.path.join(where, name)
            if i == len(parts):  # the root itself: the jail's own, it may do what it likes
                break
            st = os.fstat(fd)
            if st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
                raise _refuse(rootfs, f"{where} is not root's alone (owner uid {st.st_uid}, "
                              f"mode {stat.S_IMODE(st.st_mode):o})", f"chown root {where} "
                              f"and chmod go-w {where}")
            searchable = st.st_mode & 0o001 or (st.st_mode & 0o010 and st.st_gid != 0)
            if not guard and not searchable and not _acl(fd):
                guard = where
    except OSError as e:
        raise JailerError(f"rootfs {rootfs}: {where}: {e.strerror}", errno=e.errno or 0) from None
    finally:
        os.close(fd)
    if not guard:
        parent = os.path.dirname(real)
        raise _refuse(rootfs, "other users can reach it, and files the jail's root makes "
                      "there belong to host root", f"chmod 700 {parent} (or keep the root "
                      "below a 0700 directory), or run it --read-only, or from an image")


def _refuse(rootfs: str, why: str, fix: str) -> JailerError:
    return JailerError(f"rootfs {rootfs}: a jail's root used in place must be out of other "
                       f"users' reach: {why}", hint=fix)
