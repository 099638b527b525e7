"""An interactive shell under a real pseudo-terminal, driven like a person would."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time

import pytest

pytestmark = pytest.mark.root


class Terminal:
    """A pty whose slave side is the controlling terminal of a `jailer run`."""

    def __init__(self, cmd: list[str], env: dict, rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols)

        def make_ctty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     preexec_fn=make_ctty, close_fds=True)
        os.close(slave)
        self.screen = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, needle: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not on screen: {self.screen[-500:]!r}")
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.screen += os.read(self.master, 4096)
                except OSError:
                    break
        return self.screen.decode(errors="replace")

    def close(self) -> int:
        try:
            rc = self.proc.wait(timeout=10)
        finally:
            os.close(self.master)
        return rc


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_interactive_shell(jailer_cmd, jenv, level):
    t = Terminal([jailer_cmd, "run", "--level", level, "busybox", "/bin/sh"],
                 {**jenv, "TERM": "xterm"}, rows=30, cols=100)
    t.type("echo sum-$((40+2))\r")
    t.expect("sum-42")
    t.type("stty size; tty; echo $TERM\r")
    screen = t.expect("xterm\r\n")
    assert "30 100" in screen
    if level != "chroot":
        assert "/dev/pts/0" in screen  # the pty lives in the container's own devpts
    t.type("exit 7\r")
    assert t.close() == 7


def test_window_resize_reaches_the_container(jailer_cmd, jenv):
    t = Terminal([jailer_cmd, "run", "busybox", "/bin/sh"], jenv, rows=24, cols=80)
    t.type("stty size\r")
    t.expect("24 80")
    t.resize(50, 132)  # the kernel sends SIGWINCH to jailer, which copies the size
    time.sleep(0.3)
    t.type("stty size\r")
    t.expect("50 132")
    t.type("exit\r")
    assert t.close() == 0


def test_ctrl_c_interrupts_inside_not_the_runtime(jailer_cmd, jenv):
    t = Terminal([jailer_cmd, "run", "busybox", "/bin/sh"], jenv)
    t.type("sleep 30\r")
    time.sleep(0.5)
    t.type("\x03")  # ^C goes through raw mode to the container's line discipline
    t.type("echo after-$?\r")
    t.expect("after-130")
    t.type("exit 0\r")
    assert t.close() == 0


def test_terminal_is_restored_after_exit(jailer_cmd, jenv):
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    subprocess.run([jailer_cmd, "run", "busybox", "/bin/true"], env=jenv, stdin=slave,
                   stdout=slave, stderr=slave, timeout=30, check=True)
    assert termios.tcgetattr(slave) == before
    os.close(slave)
    os.close(master)


def test_no_tty_when_stdin_is_not_a_terminal(jailer):
    r = jailer("run", "busybox", "/bin/sh", "-c", "tty; true")
    assert "not a tty" in r.stdout
    r = jailer("run", "--tty", "busybox", "/bin/sh", "-c", "tty")
    assert "/dev/pts/0" in r.stdout
