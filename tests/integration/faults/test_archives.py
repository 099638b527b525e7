"""Hostile archives through the CLI (issue 14): an archive cut short is refused in one line
with nothing stored, and a tree 2,100 directories deep imports, runs, packs and is removed
(it made every tree walk recurse: RecursionError, a traceback, exit 1)."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil

import pytest

from tests.support.imgtools import member, one_line_error, store_entries, tar_bytes

pytestmark = pytest.mark.root

ENTRIES = 10_000
DEPTH = 2_100


@pytest.fixture
def image_name(data_dir):
    """A factory of unique image names; the images are removed after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"arch-{secrets.token_hex(4)}")
        return made[-1]

    yield make
    from images.store import remove_tree  # iterative: deep images too

    for name in made:
        remove_tree(str(data_dir / "images" / name))


@pytest.fixture(scope="module")
def big_tar() -> bytes:
    """10,000 small files: each member one 512-byte header and one data block."""
    return tar_bytes([member(f"f/{i:05d}", data=b"%d\n" % i) for i in range(ENTRIES)])


@pytest.mark.parametrize("cut", ["half", "half-gz", "header-gz", "gz-stream"])
def test_an_archive_cut_in_half_is_refused_and_nothing_is_stored(jailer, data_dir, tmp_path,
                                                                 image_name, big_tar, cut):
    half = len(big_tar) // 2  # between two members: tarfile used to stop there, silently
    whole_gz = gzip.compress(big_tar)
    data = {"half": big_tar[:half], "half-gz": gzip.compress(big_tar[:half]),
            "header-gz": gzip.compress(big_tar[:half + 300]),
            "gz-stream": whole_gz[:len(whole_gz) // 2]}[cut]
    path = tmp_path / f"cut.tar{'.gz' if 'gz' in cut else ''}"
    path.write_bytes(data)
    before = store_entries(data_dir)
    line = one_line_error(jailer("image", "import", str(path), "--name", image_name()),
                          str(path), "not a valid or complete tar archive")
    assert "truncated" in line or "end-of-stream" in line, line
    assert store_entries(data_dir) == before  # no image, no staging directory
    assert not [e for e in os.listdir(tmp_path) if e != path.name]


def test_control_the_whole_archive_imports_every_file(jailer, data_dir, tmp_path, image_name,
                                                      big_tar):
    path = tmp_path / "whole.tar.gz"
    path.write_bytes(gzip.compress(big_tar))
    name = image_name()
    r = jailer("image", "import", str(path), "--name", name)
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(data_dir / "images" / name / "rootfs" / "f")) == ENTRIES
    assert jailer("image", "rm", name).returncode == 0


def deep_archive(rootfs: str) -> bytes:
    members, name = [], ""
    for _ in range(DEPTH):
        name = f"{name}/d" if name else "d"
        members.append(member(name, "dir"))
    members.append(member(f"{name}/leaf", data=b"at the bottom\n"))
    return tar_bytes(members, rootfs=rootfs)


# cd -P: busybox's logical cd builds the whole path string, over PATH_MAX down there
WALK = f'i=0; while [ $i -lt {DEPTH} ]; do cd -P d || exit 9; i=$((i+1)); done'


def test_a_tree_2100_deep_imports_runs_and_is_removed(jailer, data_dir, tmp_path, image_name,
                                                      rootfs):
    """Imported (the kernel limits one path string to PATH_MAX, not the depth: every walk is
    iterative and holds a bounded number of fds); a container reads the leaf and makes a
    tree as deep in its own upper layer, which its clean-up then removes."""
    path = tmp_path / "deep.tar"
    path.write_bytes(deep_archive(rootfs))
    name = image_name()
    before = store_entries(data_dir)
    r = jailer("image", "import", str(path), "--name", name)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = jailer("run", "--level", "container", name, "/bin/sh", "-c",
               f"{WALK}; cat leaf; cd /tmp && mkdir x && cd x && "
               f"{WALK.replace('cd -P d', 'mkdir d && cd -P d')}; echo made")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.split() == ["at", "the", "bottom", "made"]
    r = jailer("image", "rm", name)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert store_entries(data_dir) == before


def test_a_tree_2100_deep_exports_and_packs(jailer, data_dir, tmp_path, image_name, rootfs):
    path = tmp_path / "deep.tar"
    path.write_bytes(deep_archive(rootfs))
    name, again = image_name(), image_name()
    assert jailer("image", "import", str(path), "--name", name).returncode == 0
    out = tmp_path / "export.tar"
    r = jailer("image", "export", name, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert jailer("image", "import", str(out), "--name", again).returncode == 0
    digest = [json.loads(jailer("image", "inspect", n).stdout)["digest"] for n in (name, again)]
    assert digest[0] == digest[1]
    if shutil.which("mksquashfs"):
        r = jailer("image", "pack", name, "--format", "squashfs")
        assert r.returncode == 0, r.stderr
    if shutil.which("mkfs.erofs"):  # it works on whole path strings: refused in one line
        one_line_error(jailer("image", "pack", name, "--format", "erofs"), "over PATH_MAX",
                       "--format squashfs")
