"""The client side of a detached jail's console and log (the monitor, ``monitor.c``, serves
them): ``attach`` joins the terminal to ``console.sock``, ``follow`` prints ``console.log``.

Stdlib only and import-light: this runs on ``jailer attach`` / ``jailer logs``.

Console protocol, client -> monitor: frames of 1 byte type, 2 bytes length (little endian) and
the payload; ``i`` carries input bytes, ``w`` the window size (rows, cols, xpixel, ypixel as
u16 LE). Monitor -> client: the last 16 KiB of output on connect, then the raw output stream;
the monitor closes the connection when the jail's pid 1 has ended.
"""

from __future__ import annotations

import _socket as socket  # the C module (`socket` imports enum)
import os
import select
import struct

DETACH_KEY = b"\x1d"
"""Ctrl-] (as in telnet and ``virsh console``): typed on an attached terminal, it detaches and
leaves the jail running. Pass ``detach_key=b""`` to ``attach`` to disable it."""

TIOCGWINSZ = 0x5413
_MAX_FRAME = 0xFFFF


def frame(kind: bytes, payload: bytes) -> bytes:
    """Encode client -> monitor frames (split into several when the payload is long)."""
    out = []
    for i in range(0, max(len(payload), 1), _MAX_FRAME):
        part = payload[i:i + _MAX_FRAME]
        out.append(kind + len(part).to_bytes(2, "little") + part)
    return b"".join(out)


def winsize_frame(rows: int, cols: int, xpixel: int = 0, ypixel: int = 0) -> bytes:
    return frame(b"w", struct.pack("<4H", rows, cols, xpixel, ypixel))


def connect(sock_path: str) -> socket.socket:
    """A connected stream socket to the console; OSError (ENOENT, ECONNREFUSED) if nobody
    listens. Paths too long for a sockaddr go through /proc/self/fd."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dfd = -1
    try:
        path = sock_path
        if len(os.fsencode(path)) > 107:
            dfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY)
            path = f"/proc/self/fd/{dfd}/{os.path.basename(path)}"
        s.connect(path)
    except BaseException:
        s.close()
        raise
    finally:
        if dfd >= 0:
            os.close(dfd)
    return s


def _winsize(fds: tuple[int, ...]) -> bytes | None:
    import fcntl

    for fd in fds:
        try:
            rows, cols, xp, yp = struct.unpack("4H", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))
        except OSError:
            continue
        return winsize_frame(rows, cols, xp, yp)
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def attach(sock_path: str, *, stdin: int = 0, stdout: int = 1,
           detach_key: bytes = DETACH_KEY) -> str:
    """Attach the terminal to a jail's console until the user detaches or the jail stops.

    When ``stdin`` is a tty it is put in raw mode (restored on return) and the window size is
    sent at start and on every SIGWINCH (when called from the main thread). Input is relayed
    until EOF; output is printed until the monitor closes the connection. Returns
    ``"detached"`` when ``detach_key`` was typed (the input before it is still sent), or
    ``"ended"`` when the monitor closed the connection (the jail stopped). Raises OSError
    (ENOENT, ECONNREFUSED) if nothing listens at ``sock_path``.
    """
    import _signal as signal  # the C module: `signal` imports enum

    sock = connect(sock_path)
    saved = None
    old_winch = None
    wake_r = wake_w = -1
    try:
        if os.isatty(stdin):
            import termios
            import tty

            saved = termios.tcgetattr(stdin)
            tty.setraw(stdin, termios.TCSANOW)
        size = _winsize((stdin, stdout))
        if size is not None:
            try:
                sock.sendall(size)
            except (BrokenPipeError, ConnectionResetError):
                return "ended"
            wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

            def on_winch(_signum: int, _frame: object = None) -> None:
                try:
                    os.write(wake_w, b"w")
                except OSError:
                    pass

            try:
                old_winch = signal.signal(signal.SIGWINCH, on_winch)
            except ValueError:  # not the main thread: no resize tracking
                pass
        return _relay(sock, stdin, stdout, detach_key, wake_r)
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        for fd in (wake_r, wake_w):
            if fd >= 0:
                os.close(fd)
        if saved is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()


class _Gone(Exception):
    """The monitor closed the connection."""


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        raise _Gone from None


def _relay(sock: socket.socket, stdin: int, stdout: int, detach_key: bytes,
           wake: int) -> str:
    poll = select.poll()
    sfd = sock.fileno()
    poll.register(sfd, select.POLLIN)
    poll.register(stdin, select.POLLIN)
    if wake >= 0:
        poll.register(wake, select.POLLIN)
    try:
        while True:
            for fd, _ev in poll.poll():
                if fd == sfd:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        return "ended"
                    _write_all(stdout, data)
                elif fd == stdin:
                    try:
                        data = os.read(stdin, 65536)
                    except BlockingIOError:
                        continue
                    except OSError:  # EIO: the terminal went away
                        data = b""
                    if not data:  # EOF: keep printing output until the jail stops
                        poll.unregister(stdin)
                        continue
                    cut = data.find(detach_key) if detach_key else -1
                    if cut >= 0:
                        if cut:
                            _send(sock, frame(b"i", data[:cut]))
                        return "detached"
                    _send(sock, frame(b"i", data))
                elif fd == wake:
                    try:
                        os.read(wake, 64)
                    except BlockingIOError:
                        pass
                    size = _winsize((stdin, stdout))
                    if size is not None:
                        _send(sock, size)
    except _Gone:
        return "ended"


def _inode(fd_or_path: int | str) -> tuple[int, int] | None:
    try:
        st = os.stat(fd_or_path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _copy(src: int, out: int) -> None:
    while True:
        data = os.read(src, 65536)
        if not data:
            return
        _write_all(out, data)


def follow(path: str, *, out: int = 1, follow: bool = False, stop=None,
           poll: float = 0.2) -> None:
    """Print a log file: ``FILE.1`` first when it exists (the rotated part), then ``FILE``.

    With ``follow=True`` keep printing what is appended, like ``tail -F``: when the monitor
    rotates ``FILE`` to ``FILE.1`` the rest of the old file is printed, then the new ``FILE``
    from its start. This goes on until ``stop()`` returns true (then what is left is printed)
    or KeyboardInterrupt (then it returns quietly). Without ``follow``, FileNotFoundError if
    neither file exists; with it, a missing ``FILE`` is waited for.
    """
    import time

    found = False
    try:
        fd = os.open(path + ".1", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    else:
        found = True
        try:
            _copy(fd, out)
        finally:
            os.close(fd)
    fd = -1
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not follow and not found:
                raise
        if not follow:
            if fd >= 0:
                _copy(fd, out)
            return
        while True:
            last = stop is not None and stop()
            if fd >= 0:
                _copy(fd, out)
                now = _inode(path)
                if now != _inode(fd):  # rotated (or removed): finish the old, open the new
                    _copy(fd, out)
                    os.close(fd)
                    fd = -1
                elif os.fstat(fd).st_size < os.lseek(fd, 0, os.SEEK_CUR):  # truncated
                    os.lseek(fd, 0, os.SEEK_SET)
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    pass
                else:
                    continue  # print the new file right away
            if last:
                return
            time.sleep(poll)
    except KeyboardInterrupt:
        return
    finally:
        if fd >= 0:
            os.close(fd)
