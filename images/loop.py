"""Loop devices for packed images: ``attach(file) -> /dev/loopN``, ``detach(dev)``.

Uses the kernel interface directly (as losetup does): ``LOOP_CTL_GET_FREE`` on
/dev/loop-control finds a free device, ``LOOP_CONFIGURE`` (Linux >= 5.8) binds the file,
read-only, in one call; on older kernels ``LOOP_SET_FD`` + ``LOOP_SET_STATUS64``. A device
taken by someone else between the two calls (EBUSY) is skipped. Needs CAP_SYS_ADMIN.

Typical use by the runtime, in its private mount namespace::

    dev = loop.attach(path, autoclear=True)   # freed when its last user (the mount) goes
    mount(dev, lower, fstype, MS_RDONLY)
    loop.release(dev)                          # our own reference; the mount keeps it

With ``autoclear`` the device is detached by the kernel when the mount is gone, so nothing is
left even if the runtime is killed. Without it, call :func:`detach`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time

LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
LO_NAME_SIZE = 64
# struct loop_info64: 5 x u64, 4 x u32, file name[64], crypt name[64], key[32], 2 x u64
_INFO64 = "=QQQQQIIII64s64s32sQQ"
# struct loop_config: u32 fd, u32 block_size, struct loop_info64, u64 reserved[8]
_CONFIG = "=II" + _INFO64[1:] + "8Q"

_held: dict[str, int] = {}  # device -> fd kept open by attach() until release()/detach()


class LoopError(OSError):
    """A loop device could not be set up or torn down."""


def _info(path: str, flags: int) -> tuple:
    name = os.fsencode(os.path.abspath(path))[:LO_NAME_SIZE - 1]
    return (0, 0, 0, 0, 0, 0, 0, 0, flags, name, b"", b"", 0, 0)


def attach(path: str, readonly: bool = True, autoclear: bool = False) -> str:
    """Bind ``path`` to a free loop device and return its name (``/dev/loopN``).

    The device stays open in this process (see :func:`release`) so that an autoclear device
    is not freed before it is mounted.
    """
    flags = (LO_FLAGS_READ_ONLY if readonly else 0) | (LO_FLAGS_AUTOCLEAR if autoclear else 0)
    try:
        backing = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
    except OSError as e:
        raise LoopError(e.errno, f"cannot open {path}: {e.strerror}") from None
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        os.close(backing)
        raise LoopError(e.errno, f"/dev/loop-control: {e.strerror} (loop devices need "
                                 f"root and the loop module)") from None
    try:
        for _ in range(32):
            n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
            dev = f"/dev/loop{n}"
            fd = _open_device(dev, readonly)
            try:
                _configure(fd, backing, path, flags)
            except OSError as e:
                os.close(fd)
                if e.errno == errno.EBUSY:
                    continue  # another process took it first
                raise LoopError(e.errno, f"{dev}: cannot attach {path}: {e.strerror}") from None
            _held[dev] = fd
            return dev
        raise LoopError(errno.EBUSY, "no free loop device after 32 attempts")
    finally:
        os.close(ctl)
        os.close(backing)


def _open_device(dev: str, readonly: bool) -> int:
    for _ in range(50):  # devtmpfs creates the node right after LOOP_CTL_GET_FREE
        try:
            return os.open(dev, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
        except FileNotFoundError:
            time.sleep(0.01)
    raise LoopError(errno.ENOENT, f"{dev} did not appear")


def _configure(fd: int, backing: int, path: str, flags: int) -> None:
    try:
        fcntl.ioctl(fd, LOOP_CONFIGURE, struct.pack(_CONFIG, backing, 0, *_info(path, flags),
                                                     *([0] * 8)))
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    fcntl.ioctl(fd, LOOP_SET_FD, backing)  # kernels before 5.8
    try:
        fcntl.ioctl(fd, LOOP_SET_STATUS64, struct.pack(_INFO64, *_info(path, flags)))
    except OSError:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
        raise


def release(dev: str) -> None:
    """Close this process's reference to ``dev`` (an autoclear device then lives as long as
    its mounts)."""
    fd = _held.pop(dev, None)
    if fd is not None:
        os.close(fd)


def detach(dev: str) -> None:
    """Unbind ``dev`` (if still mounted, the kernel frees it when the last mount goes)."""
    fd = _held.pop(dev, None)
    if fd is None:
        try:
            fd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise LoopError(e.errno, f"{dev}: {e.strerror}") from None
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD, 0)
    except OSError as e:
        if e.errno != errno.ENXIO:  # ENXIO: not bound any more
            raise LoopError(e.errno, f"{dev}: cannot detach: {e.strerror}") from None
    finally:
        os.close(fd)


def backing_file(dev: str) -> str | None:
    """The file bound to ``dev``, or None if it is free."""
    try:
        with open(f"/sys/block/{os.path.basename(dev)}/loop/backing_file") as f:
            return f.read().strip()
    except OSError:
        return None


def devices_of(path: str) -> list[str]:
    """Loop devices currently bound to ``path``."""
    real = os.path.realpath(path)
    out = []
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith("loop") and backing_file(name) in (real, path):
            out.append(f"/dev/{name}")
    return out
