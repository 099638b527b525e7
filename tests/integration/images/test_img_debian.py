"""A small Debian root made with debootstrap from the mirror apt uses here (cached packages make
a rerun fast), and a command run in it."""

from __future__ import annotations

import json
import time

import pytest

from images import debian
from tests.support.imgtools import store_entries

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_debootstrap_bookworm_minbase_and_run_apt(jailer, new_name, data_dir):
    mirror = debian.default_mirror("bookworm")
    name = new_name("debian")
    t0 = time.monotonic()
    r = jailer("image", "build", "debian", "--suite", "bookworm", "--variant", "minbase",
               "--name", name, timeout=900)
    assert r.returncode == 0, r.stderr
    built = time.monotonic() - t0
    meta = json.loads(jailer("image", "inspect", name).stdout)
    assert (meta["source"], meta["suite"], meta["mirror"]) == ("debian", "bookworm", mirror)
    assert meta["cmd"] == ["/bin/bash"] and meta["size"] > 50_000_000
    root = data_dir / "images" / name / "rootfs"
    assert not list((root / "var/cache/apt/archives").glob("*.deb"))  # kept in the cache
    assert (root / "etc/hostname").read_text() == f"{name}\n"  # not the host's
    r = jailer("run", "--level", "container", name, "apt-get", "--version")
    assert r.returncode == 0 and r.stdout.startswith("apt "), r.stderr
    assert not [e for e in store_entries(data_dir) if e.startswith(".")]
    print(f"debootstrap build took {built:.1f} s")
