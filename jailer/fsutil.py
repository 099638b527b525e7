"""Small filesystem helpers for the start path (``shutil`` costs ~16 ms of import here)."""

from __future__ import annotations

import os


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything under it; never follows symlinks; missing is fine."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _ignore_missing(os.unlink, os.path.join(root, name))
        for name in dirs:
            p = os.path.join(root, name)
            _ignore_missing(os.unlink if os.path.islink(p) else os.rmdir, p)
    _ignore_missing(os.rmdir, path)


def _ignore_missing(fn, path: str) -> None:
    try:
        fn(path)
    except FileNotFoundError:
        pass
