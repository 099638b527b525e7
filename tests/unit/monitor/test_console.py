"""console.follow: print a rotated log and follow it like tail -F (no monitor needed)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from jailer.objects.console import follow, frame, winsize_frame


class Out:
    """A pipe to give follow() as ``out``, read without blocking."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.data = b""

    def read(self) -> bytes:
        try:
            while chunk := os.read(self.r, 65536):
                self.data += chunk
        except BlockingIOError:
            pass
        return self.data

    def wait(self, text: bytes, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.read().endswith(text):
            assert time.monotonic() < deadline, f"{text!r} not followed; got {self.data!r}"
            time.sleep(0.005)

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def out():
    o = Out()
    yield o
    o.close()


def append(path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def test_prints_rotated_then_current(tmp_path, out):
    log = tmp_path / "console.log"
    append(f"{log}.1", "old\n")
    append(log, "new\n")
    follow(str(log), out=out.w)
    assert out.read() == b"old\nnew\n"


def test_only_one_of_them(tmp_path, out):
    log = tmp_path / "console.log"
    append(log, "new\n")
    follow(str(log), out=out.w)
    assert out.read() == b"new\n"
    os.rename(log, f"{log}.1")
    follow(str(log), out=out.w)
    assert out.read() == b"new\nnew\n"


def test_missing_log(tmp_path):
    with pytest.raises(FileNotFoundError):
        follow(str(tmp_path / "console.log"), out=1)


def test_follows_appends_and_rotation_until_stop(tmp_path, out):
    log = tmp_path / "console.log"
    append(f"{log}.1", "0\n")
    append(log, "1\n")
    stop = threading.Event()
    t = threading.Thread(target=follow, args=(str(log),),
                         kwargs={"out": out.w, "follow": True, "stop": stop.is_set,
                                 "poll": 0.01})
    t.start()
    try:
        out.wait(b"0\n1\n")
        append(log, "2\n")
        out.wait(b"0\n1\n2\n")
        append(log, "3\n")  # written just before the rotation: still printed
        os.rename(log, f"{log}.1")
        append(log, "4\n")
        out.wait(b"3\n4\n")
        append(log, "5\n")
        stop.set()  # what is left is printed, then it returns
    finally:
        stop.set()
        t.join(5)
    assert not t.is_alive()
    assert out.read() == b"0\n1\n2\n3\n4\n5\n"


def test_waits_for_the_log_to_appear(tmp_path, out):
    log = tmp_path / "console.log"
    stop = threading.Event()
    t = threading.Thread(target=follow, args=(str(log),),
                         kwargs={"out": out.w, "follow": True, "stop": stop.is_set,
                                 "poll": 0.01})
    t.start()
    try:
        time.sleep(0.05)
        append(log, "late\n")
        out.wait(b"late\n")
    finally:
        stop.set()
        t.join(5)
    assert out.read() == b"late\n"


def test_keyboard_interrupt_returns(tmp_path, out):
    log = tmp_path / "console.log"
    append(log, "x\n")

    calls = []

    def stop() -> bool:  # Ctrl-C while following
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return False

    assert follow(str(log), out=out.w, follow=True, stop=stop, poll=0.01) is None
    assert out.read() == b"x\n"


def test_frames():
    assert frame(b"i", b"ab") == b"i\x02\x00ab"
    assert winsize_frame(24, 80) == b"w\x08\x00\x18\x00\x50\x00\x00\x00\x00\x00"
    big = frame(b"i", b"x" * 70000)
    assert big[:3] == b"i\xff\xff" and big[3 + 65535:3 + 65535 + 3] == b"i" + (4465).to_bytes(
        2, "little")
