"""Where jailer keeps things: system paths as root, XDG paths for an unprivileged user."""

from __future__ import annotations

import os


def data_dir() -> str:
    """Persistent data: images, id pool, per-run upper layers."""
    if os.environ.get("JAILER_DATA"):
        return os.environ["JAILER_DATA"]
    if os.geteuid() == 0:
        return "/var/lib/jailer"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "jailer")


def images_dir() -> str:
    return os.path.join(data_dir(), "images")


def containers_dir() -> str:
    return os.path.join(data_dir(), "containers")


def idpool_dir() -> str:
    return os.path.join(data_dir(), "idpool")


def libexec_dir() -> str:
    return os.path.join(data_dir(), "libexec")
