"""Progress reporting for long work (debootstrap, import, pack, export).

Library functions take a :class:`Progress` (the base class does nothing); the CLI passes a
:class:`TerminalProgress` when stderr is a terminal, and nothing when it is piped.
"""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Does nothing: the interface that builders and importers report to."""

    def start(self, label: str, total: int | None = None, unit: str = "B") -> None:
        """A new phase: ``total`` units of work (None: unknown, show a spinner)."""

    def advance(self, n: int) -> None:
        """``n`` more units done."""

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` units of ``total`` (when the worker reports absolute numbers)."""

    def note(self, text: str) -> None:
        """What is happening now (shown next to a spinner)."""

    def clear(self) -> None:
        """Take the progress line off the screen (before printing something else)."""

    def done(self) -> None:
        """The phase is over."""


def _human(n: float, unit: str) -> str:
    if unit != "B":
        return f"{int(n)}"
    for u in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or u == "GiB":
            return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
        n /= 1024
    return f"{n:.1f} TiB"


class TerminalProgress(Progress):
    """One self-overwriting line on a terminal: a bar when the total is known, else a
    spinner; redrawn at most ten times a second."""

    SPIN = "|/-\\"
    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.label = ""
        self.total: int | None = None
        self.unit = "B"
        self.count = 0
        self.text = ""
        self.tick = 0
        self.last = 0.0
        self.shown = False

    def start(self, label: str, total: int | None = None, unit: str = "B") -> None:
        self.label, self.total, self.unit, self.count, self.text = label, total, unit, 0, ""
        self._draw(force=True)

    def advance(self, n: int) -> None:
        self.count += n
        self._draw()

    def update(self, done: int, total: int | None = None) -> None:
        self.count = done
        if total is not None:
            self.total = total
        self._draw()

    def note(self, text: str) -> None:
        self.text = text
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        self.tick += 1
        if self.total:
            frac = min(1.0, self.count / self.total)
            fill = int(frac * self.WIDTH)
            line = (f"{self.label} [{'#' * fill}{'.' * (self.WIDTH - fill)}] "
                    f"{frac * 100:3.0f}% {_human(self.count, self.unit)}/"
                    f"{_human(self.total, self.unit)}")
        else:
            done = f" {_human(self.count, self.unit)}" if self.count else ""
            line = f"{self.label} {self.SPIN[self.tick % 4]}{done} {self.text}"
        self.stream.write("\r" + line[:200] + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
            self.last = 0.0

    def done(self) -> None:
        self.clear()
