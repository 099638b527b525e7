"""``jailer run``'s fast path imports none of click, pyroute2, images, jailer.bench, jeepney
(nor the systemd cgroup driver that uses it): given a rootfs that does not exist, the command
parses its options, starts building the Spec and stops with one line, as any user, without
starting anything. The whole start, as root, is
tests/integration/run/test_import_budget.py."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.importbudget import FORBIDDEN, argv, forbidden, imported, other_output


@pytest.fixture
def missing_root(tmp_path):
    """A rootfs path that does not exist: the run parses its options, starts to build the
    Spec and stops with one line, as any user, before anything is started."""
    return str(tmp_path / "no-such-rootfs")


@pytest.mark.parametrize("options", [
    ["--level", "chroot"],
    ["--level", "jail"],
    ["--level", "container"],
    [],
    ["--level", "jail", "--env", "A=b", "--hostname", "h", "--rlimit", "nofile=64"],
])
def test_run_fast_path_imports_none_of_the_slow_packages(options, missing_root):
    r = subprocess.run(argv("run", *options, missing_root, "/bin/true"),
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                       cwd="/")
    modules = imported(r.stderr)
    assert "jailer.main" in modules, r.stderr[-2000:]
    said = other_output(r.stderr)
    assert r.returncode == 125 and len(said) == 1 and "no-such-rootfs" in said[0], (
        f"expected one error line about the rootfs, got exit {r.returncode}: {said}")
    assert not forbidden(modules), f"jailer run imported {forbidden(modules)}"


def test_the_check_sees_what_it_looks_for():
    r = subprocess.run(argv("--version"), capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "click" in forbidden(imported(r.stderr))  # the full CLI imports click
    assert forbidden({"images", "images.store", "imagesx", "jailer.bench.cli", "pyroute2.ndb",
                      "clicker", "jailer.benchmark"}) == sorted(
        ["images", "images.store", "jailer.bench.cli", "pyroute2.ndb"])
    assert set(FORBIDDEN) == {"click", "pyroute2", "images", "jailer.bench", "jeepney",
                              "cgroups.systemd", "cgroups.dbus"}
    assert forbidden({"jeepney.io.blocking", "cgroups.systemd", "cgroups.v2"}) == [
        "cgroups.systemd", "jeepney.io.blocking"]
