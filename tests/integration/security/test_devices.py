"""Device nodes: mknod of block and character devices (busybox and mknod(2)), including the
overlayfs whiteout (char 0:0), while fifos and sockets stay allowed; /dev holds only the
harmless minimum.

At chroot level real device nodes can be made -- inside the test's private copy of the root,
which is deleted afterwards; nothing is ever created in the host's own /dev.
"""

from __future__ import annotations

import errno as E
import os
import stat

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied, assert_succeeded

pytestmark = pytest.mark.root

DEVICE_NODES = {  # label -> command that makes a device node inside
    "mknod_block_bb": "mknod /tmp/vda b 253 0",
    "mknod_char_bb": "mknod /tmp/mem c 1 1",
    "mknod_block": f"{ATTACK} mknod /tmp/loop b 7 0",
    "mknod_char": f"{ATTACK} mknod /tmp/kmsg c 1 11",
    "mknod_whiteout": "mknod /dev/shm/wh c 0 0",  # tmpfs: overlayfs itself refuses 0:0
}
ALLOWED_NODES = {
    "fifo_bb": "mknod /tmp/fifo p",
    "mkfifo": "mkfifo /tmp/fifo2",
    "fifo": f"{ATTACK} mknod /tmp/fifo3 p",
    "socket": f"{ATTACK} mknod /tmp/sock s",
}
MINIMAL_CHAR_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                        "/dev/tty", "/dev/pts/ptmx"}


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", DEVICE_NODES)
def test_device_nodes_are_refused(attack, level, label):
    out = attack(level, f"try {label} {DEVICE_NODES[label]}")
    assert_denied(out, label, E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_fifos_and_sockets_are_allowed(attack, level):
    out = attack(level, "".join(f"try {k} {v}\n" for k, v in ALLOWED_NODES.items()))
    for label in ALLOWED_NODES:
        assert_succeeded(out, label)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_dev_has_only_the_minimal_devices(attack, level):
    out = attack(level, "try chars find /dev -type c\ntry blocks find /dev -type b\n"
                        "try vda ls /dev/vda\ntry kmsg ls /dev/kmsg\ntry mem ls /dev/mem\n"
                        "try loop ls /dev/loop0\ntry kvm ls /dev/kvm")
    assert set(out["chars"].text.split()) <= MINIMAL_CHAR_DEVICES, out["chars"]
    assert out["blocks"].text == "", out["blocks"]
    for label in ("vda", "kmsg", "mem", "loop", "kvm"):
        assert_denied(out, label, E.ENOENT)


def test_chroot_level_makes_device_nodes_in_its_private_copy(attack, sec_root):
    out = attack("chroot", "try block mknod /tmp/loopdev b 7 250\n"
                           "try char mknod /tmp/nulldev c 1 3\n"
                           f"try block_c {ATTACK} mknod /tmp/loopdev2 b 7 251")
    try:
        for label in ("block", "char", "block_c"):
            assert_succeeded(out, label)
        st = os.lstat(sec_root / "tmp" / "loopdev")
        assert stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == 7
        assert stat.S_ISCHR(os.lstat(sec_root / "tmp" / "nulldev").st_mode)
    finally:
        for node in ("loopdev", "nulldev", "loopdev2"):
            (sec_root / "tmp" / node).unlink(missing_ok=True)
