"""What ``jailer run`` may not import (start latency: each of these costs tens of milliseconds),
and how to see what a command imported: ``python -X importtime`` writes one line per module to
stderr, which ``imported`` reads back."""

from __future__ import annotations

import sys

FORBIDDEN = ("click", "pyroute2", "images", "jailer.bench", "jeepney", "cgroups.systemd",
             "cgroups.dbus")  # the last three: only the systemd cgroup driver uses D-Bus
# a run of an image by name looks it up in the image store: that module (and its package's
# two-line __init__), nothing else of the images library
STORE = ("images", "images.store")
# The console script, exactly: jailer's entry point with the command's arguments.
ENTRY = "import sys; sys.argv[0] = 'jailer'; from jailer.main import main; main()"


def argv(*args: str) -> list[str]:
    """``jailer ARGS`` run by this interpreter with -X importtime."""
    return [sys.executable, "-X", "importtime", "-c", ENTRY, *args]


def imported(stderr: str) -> set[str]:
    """The modules named in -X importtime's lines of ``stderr``."""
    out = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                out.add(name)
    return out


def forbidden(modules: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    """The forbidden packages among ``modules``, with their submodules, except ``allowed``."""
    return sorted(m for m in modules if m not in allowed
                  and any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def other_output(stderr: str) -> list[str]:
    """stderr without the -X importtime lines."""
    return [line for line in stderr.splitlines() if not line.startswith("import time:")]
