"""Users and groups of an image: look-ups in its /etc/passwd, read inside the root."""

from __future__ import annotations


def passwd_entry(rootfs: str, user: str) -> tuple[int, int, str] | None:
    """``(uid, gid, home)`` of ``user`` (a name or a number) in the image's /etc/passwd,
    read without following a link out of the root; None if it is not there."""
    from jailer.kernel.fsutil import read_in_root

    data = read_in_root(rootfs, "etc/passwd")
    try:
        for line in (data or b"").decode(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) >= 6 and (fields[0] == user or fields[2] == user):
                return int(fields[2]), int(fields[3]), fields[5]
    except ValueError:
        pass
    return None


def home_of(rootfs: str, uid: int) -> str:
    """The home of ``uid`` in the image's /etc/passwd, ``/`` without an entry (as runc)."""
    entry = passwd_entry(rootfs, str(uid))
    return entry[2] if entry else "/"
