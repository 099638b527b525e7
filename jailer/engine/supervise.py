"""Wait for a running container: relay its terminal, forward signals, enforce the timeout."""

from __future__ import annotations

import _signal as signal  # the C module (`signal` imports enum)
import os
import select
import time

TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414


class Supervisor:
    """Event loop over a pidfd, and the pty master and stdin when there is a terminal."""

    def __init__(self, pid: int, *, timeout: float | None = None, master: int = -1,
                 stdio: tuple[int, int, int] = (0, 1, 2), killpg: bool = False,
                 relay: dict[int, int] | None = None) -> None:
        self.pid = pid
        self.timeout = timeout
        self.master = master
        self.stdio = stdio
        self.killpg = killpg
        self.timed_out = False
        self.relay = relay or {}  # read end of a pipe from the process -> where it goes

    def _winch(self, _signum: int, _frame: object = None) -> None:
        self._copy_winsize()

    def kill(self) -> None:
        """SIGKILL the whole container (pid 1 of a pid namespace takes the rest with it)."""
        try:
            if self.killpg:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _copy_winsize(self) -> None:
        if self.master < 0:
            return
        import fcntl

        try:
            size = fcntl.ioctl(self.stdio[0], TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, TIOCSWINSZ, size)
        except OSError:
            pass

    def wait(self) -> int:
        """Run until the container's first process exits; return its wait status.

        Signals are forwarded by the caller (``Launch``), which installs its handlers before
        the container exists so that none is lost.
        """
        old = {}
        raw = None
        if self.master >= 0:
            old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._winch)
            self._copy_winsize()
            raw = _raw_mode(self.stdio[0])
        pidfd = os.pidfd_open(self.pid)
        try:
            return self._loop(pidfd)
        finally:
            os.close(pidfd)
            if raw is not None:
                import termios

                termios.tcsetattr(self.stdio[0], termios.TCSADRAIN, raw)
            for s, h in old.items():
                signal.signal(s, h)
            if self.master >= 0:
                os.close(self.master)

    def _loop(self, pidfd: int) -> int:
        poll = select.poll()
        poll.register(pidfd, select.POLLIN)
        if self.master >= 0:
            poll.register(self.master, select.POLLIN)
            try:
                os.fstat(self.stdio[0])
                poll.register(self.stdio[0], select.POLLIN)
            except OSError:
                pass
        for src in self.relay:
            poll.register(src, select.POLLIN)
        deadline = time.monotonic() + self.timeout if self.timeout else None
        status = None
        while status is None:
            wait_ms = None
            if deadline is not None:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            events = poll.poll(wait_ms)
            if not events and deadline is not None and time.monotonic() >= deadline:
                self.timed_out = True
                self.kill()
                deadline = None
            for fd, _ev in events:
                if fd == pidfd:
                    _, status = os.waitpid(self.pid, 0)
                elif fd == self.master:
                    if not self._pump(self.master, self.stdio[1]):
                        poll.unregister(self.master)
                elif fd == self.stdio[0]:
                    if not self._pump(fd, self.master):
                        poll.unregister(fd)
                elif fd in self.relay and not self._pump(fd, self.relay[fd]):
                    poll.unregister(fd)
        # drain what the container wrote last, without waiting long (a process it left
        # behind may hold the write end open)
        outs = {self.master: self.stdio[1]} if self.master >= 0 else {}
        outs.update(self.relay)
        drain = select.poll()
        for src in outs:
            drain.register(src, select.POLLIN)
        while outs and (ready := drain.poll(100)):
            for src, _ev in ready:
                if not self._pump(src, outs[src]):
                    drain.unregister(src)
                    del outs[src]
        return status

    def _pump(self, src: int, dst: int) -> bool:
        try:
            data = os.read(src, 65536)
        except OSError:  # EIO: the pty's last slave closed
            return False
        if not data:
            return False
        try:
            while data:
                n = os.write(dst, data)
                data = data[n:]
        except OSError:  # the reader went away (EPIPE): stop relaying this stream
            return False
        return True


def _raw_mode(fd: int):
    """Put a terminal in raw mode; return the attributes to restore, or None."""
    import termios
    import tty

    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        return None
    tty.setraw(fd, termios.TCSANOW)
    return old
