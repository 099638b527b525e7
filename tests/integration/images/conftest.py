"""Fixtures of the image tests: unique image names removed after each test, and a sentinel
directory outside the store that hostile archives aim at.

The root ``tests/conftest.py`` provides ``data_dir`` (a private JAILER_DATA with the busybox
image), ``jenv``, ``jailer`` (runs the CLI there) and the leak check.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def new_name(data_dir):
    """A factory of unique image names; the images are removed after the test."""
    made: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        made.append(name)
        return name

    yield make
    for name in made:
        shutil.rmtree(data_dir / "images" / name, ignore_errors=True)


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """An empty directory outside the store; nothing may ever appear in it."""
    d = tmp_path / "sentinel"
    d.mkdir()
    (d / "target").write_text("host file\n")
    return d


@pytest.fixture
def busybox_rootfs(data_dir) -> str:
    return str(data_dir / "images" / "busybox" / "rootfs")
