"""Errors, the uid pool, the image store: pure logic on temp dirs."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from images.busybox import _is_static
from images.store import ImageError, Store, valid_name
from jailer.core.errors import JailerError
from jailer.engine.idpool import POOL_START, RANGE, IdPool


def test_error_line_has_stage_call_errno_and_hint():
    e = JailerError.from_oserror("mounts", OSError(1, "mount('proc', '/r/proc'): Operation "
                                                       "not permitted", "/r/proc"))
    assert str(e) == "mounts: mount('proc', '/r/proc'): Operation not permitted (errno 1)"
    assert e.syscall == "mount" and e.path == "/r/proc"
    e = JailerError.from_oserror("exec", FileNotFoundError(2, "No such file or directory",
                                                           "/x"), exit_code=127)
    assert str(e).startswith("exec: /x: No such file or directory (errno 2): the command")
    assert JailerError.from_dict(e.to_dict()).to_dict() == e.to_dict()


def test_idpool_allocates_distinct_ranges_and_reuses_released(tmp_path):
    pool = IdPool(str(tmp_path))
    a, b = pool.allocate(), pool.allocate()
    assert {a, b} == {POOL_START, POOL_START + RANGE}
    pool.release(a)
    assert pool.allocate() == a


def test_idpool_frees_ranges_of_dead_owners(tmp_path):
    pool = IdPool(str(tmp_path))
    dead = pool.allocate("pid:999999999:1")
    assert pool.gc() == [dead]
    assert pool.in_use() == {}
    dead = pool.allocate("pid:999999999:1")
    assert pool.allocate() == dead  # a dead owner's range is taken over


def _grab(args):
    directory, n = args
    pool = IdPool(directory)
    return [pool.allocate(f"jail:{os.getpid()}:{i}") for i in range(n)]


def test_idpool_concurrent_allocations_never_overlap(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as workers:
        results = workers.map(_grab, [(str(tmp_path), 5)] * 8)
    bases = [b for r in results for b in r]
    assert len(bases) == len(set(bases)) == 40


@pytest.mark.parametrize("name,ok", [("busybox", True), ("a.b-c_d", True), ("", False),
                                     ("../x", False), ("A", False), ("x" * 65, False),
                                     ("-x", False), ("a/b", False)])
def test_image_names(name, ok):
    assert valid_name(name) is ok


def test_store_rootfs_of_unknown_image(tmp_path):
    with pytest.raises(ImageError, match="no image named 'nope'"):
        Store(str(tmp_path)).rootfs("nope")


def test_is_static(tmp_path):
    assert not _is_static("/bin/sh" if os.path.exists("/bin/sh") else "/usr/bin/env")
    (tmp_path / "f").write_bytes(b"not an elf")
    assert not _is_static(str(tmp_path / "f"))
