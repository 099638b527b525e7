"""``jailer run``'s fast path imports none of click, pyroute2, images, jailer.bench: the command
runs unprivileged (as nobody when the tests run as root), so it parses its options, builds the
Spec and stops at the privilege check without starting anything. The whole start, as root, is
tests/integration/run/test_import_budget.py."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from tests.support.importbudget import FORBIDDEN, argv, forbidden, imported, other_output

NOBODY = 65534


def unprivileged() -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


@pytest.fixture
def empty_root():
    """An empty directory that nobody can reach (pytest's own tmp_path is private)."""
    d = tempfile.mkdtemp(prefix="budget-root-")
    os.chmod(d, 0o755)
    yield d
    os.rmdir(d)


@pytest.mark.parametrize("options", [
    ["--level", "chroot"],
    ["--level", "jail"],
    ["--level", "container"],
    [],
    ["--level", "jail", "--env", "A=b", "--hostname", "h", "--rlimit", "nofile=64"],
])
def test_run_fast_path_imports_none_of_the_slow_packages(options, empty_root):
    r = subprocess.run(argv("run", *options, empty_root, "/bin/true"),
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                       preexec_fn=unprivileged, cwd="/")
    modules = imported(r.stderr)
    assert "jailer.main" in modules, r.stderr[-2000:]
    said = other_output(r.stderr)
    assert r.returncode != 0 and len(said) == 1 and said[0].startswith("jailer: "), (
        f"expected one error line (not root), got exit {r.returncode}: {said}")
    assert not forbidden(modules), f"jailer run imported {forbidden(modules)}"


def test_the_check_sees_what_it_looks_for():
    r = subprocess.run(argv("--version"), capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "click" in forbidden(imported(r.stderr))  # the full CLI imports click
    assert forbidden({"images", "images.store", "imagesx", "jailer.bench.cli", "pyroute2.ndb",
                      "clicker", "jailer.benchmark"}) == sorted(
        ["images", "images.store", "jailer.bench.cli", "pyroute2.ndb"])
    assert set(FORBIDDEN) == {"click", "pyroute2", "images", "jailer.bench"}
