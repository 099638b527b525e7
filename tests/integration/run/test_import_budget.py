"""A real ``jailer run`` (as root, the container started and waited for) imports none of click,
pyroute2, images, jailer.bench: start latency is guarded here rather than by timings."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.importbudget import argv, forbidden, imported, other_output

pytestmark = pytest.mark.root


@pytest.mark.parametrize("level", ["chroot", "jail", "container"])
def test_a_real_run_imports_none_of_the_slow_packages(level, rootfs, jenv):
    r = subprocess.run(argv("run", "--level", level, rootfs, "/bin/true"), env=jenv,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, other_output(r.stderr)
    modules = imported(r.stderr)
    assert "jailer.main" in modules
    assert not forbidden(modules), f"jailer run --level {level} imported {forbidden(modules)}"


@pytest.mark.xfail(strict=True, reason="h-tests branch only: resolving an image name imports "
                   "images.store today (frontends.cliopts.resolve_rootfs)")
def test_a_run_of_an_image_by_name_imports_none_of_the_slow_packages(jenv):
    r = subprocess.run(argv("run", "busybox", "true"), env=jenv, capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, other_output(r.stderr)
    modules = imported(r.stderr)
    assert not forbidden(modules), f"jailer run busybox true imported {forbidden(modules)}"
