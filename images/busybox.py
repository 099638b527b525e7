"""The built-in default image: a busybox root made from the host's busybox-static."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from images.store import ImageError, Store, check_name

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
        "home", "var/tmp", "run", "mnt")
FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/hostname": "busybox\n",
    "etc/os-release": 'NAME="jailer busybox"\nID=busybox\n',
}


def find_busybox() -> str:
    """The host's static busybox binary (ImageError if there is none)."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path) and _is_static(path):
            return path
    raise ImageError("no static busybox on this host (install it: apt-get install "
                     "busybox-static)")


def _is_static(path: str) -> bool:
    """True when the ELF file has no PT_INTERP program header (no dynamic loader)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(int.from_bytes(table[i * phentsize:i * phentsize + 4], "little") != 3
               for i in range(phnum))


def populate(rootfs: str, busybox: str) -> int:
    """Fill ``rootfs`` with busybox, one symlink per applet, and minimal /etc; return size."""
    for d in DIRS:
        os.makedirs(os.path.join(rootfs, d), mode=0o755, exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "var/tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    shutil.copy2(busybox, os.path.join(rootfs, "bin/busybox"))
    listing = subprocess.run([busybox, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in listing:
        link = os.path.join(rootfs, applet)
        if applet == "bin/busybox" or os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/bin/busybox", link)
    for rel, text in FILES.items():
        with open(os.path.join(rootfs, rel), "w") as f:
            f.write(text)
    return os.path.getsize(busybox)


def build(store: Store, name: str = "busybox", replace: bool = False,
          in_use: Callable[[str], bool] | None = None) -> str:
    """Build the busybox image into ``store``; return the image directory."""
    check_name(name)
    busybox = find_busybox()
    if store.exists(name) and not replace:
        raise ImageError(f"image {name!r} already exists (use --replace to rebuild it)")
    staging = store.begin(name)
    try:
        populate(os.path.join(staging, "rootfs"), busybox)
        version = subprocess.run([busybox], capture_output=True, text=True).stdout
        meta = {
            "source": "busybox", "busybox": busybox,
            "version": version.splitlines()[0] if version else "",
            "cmd": ["/bin/sh"], "env": [],
        }
    except BaseException:
        store.abort(staging)
        raise
    return store.commit(name, staging, meta, replace=replace, in_use=in_use)
