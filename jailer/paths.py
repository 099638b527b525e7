"""Where jailer keeps things: system paths as root, XDG paths for an unprivileged user.

Below the data dir: ``images/`` (the image store), ``containers/<id>/`` (per-start upper
layers), ``starts/<id>`` (which runtime owns a start, for ``jailer gc``), ``idpool/`` (uid
ranges), ``seccomp/`` (compiled filters) and ``libexec/`` (the --init binary).
"""

from __future__ import annotations

import os


def data_dir() -> str:
    """Persistent data (``$JAILER_DATA`` overrides)."""
    if os.environ.get("JAILER_DATA"):
        return os.environ["JAILER_DATA"]
    if os.geteuid() == 0:
        return "/var/lib/jailer"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "jailer")


def images_dir() -> str:
    return os.path.join(data_dir(), "images")
