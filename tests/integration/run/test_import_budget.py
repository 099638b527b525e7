"""A real ``jailer run`` (as root, the container started and waited for) imports none of click,
pyroute2, images, jailer.bench, jeepney (nor the systemd cgroup driver): start latency is
guarded here rather than by timings."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.importbudget import STORE, argv, forbidden, imported, other_output

pytestmark = pytest.mark.root


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_a_real_run_imports_none_of_the_slow_packages(level, rootfs, jenv):
    r = subprocess.run(argv("run", "--level", level, rootfs, "/bin/true"), env=jenv,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, other_output(r.stderr)
    modules = imported(r.stderr)
    assert "jailer.main" in modules
    assert not forbidden(modules), f"jailer run --level {level} imported {forbidden(modules)}"


def test_a_run_of_an_image_by_name_imports_only_the_image_store(jenv):
    r = subprocess.run(argv("run", "busybox", "true"), env=jenv, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, other_output(r.stderr)
    modules = imported(r.stderr)
    assert "images.store" in modules  # the control: the name was looked up in the store
    bad = forbidden(modules, allowed=STORE)
    assert not bad, f"jailer run busybox true imported {bad}"
