"""``--init`` on a host without a C compiler: one line, exit 125, nothing left behind."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.root


def test_init_without_a_c_compiler_is_one_clear_line(jailer, rootfs, tmp_path):
    fresh = tmp_path / "data"  # no init binary built yet
    fresh.mkdir()
    empty_bin = tmp_path / "bin"  # a PATH with no cc/gcc in it
    empty_bin.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CC"}
    env.update(JAILER_DATA=str(fresh), PATH=str(empty_bin))
    r = jailer("run", "--init", rootfs, "true", env=env)
    assert r.returncode == 125, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "--init needs a C compiler" in lines[0] and "apt-get install gcc" in lines[0]
    assert not (fresh / "libexec").exists()
    assert [p for p in fresh.rglob("*") if not p.is_dir()] == []
