"""Archives that end early, and trees nested thousands of directories deep (issue 14).

tarfile stops without a word at a header cut short, at a corrupt header, and where the data
simply runs out between two members: an archive cut in half imported half its files with exit
0. A member 2,100 directories deep made the extraction, the digest walk and the clean-up
recurse (RecursionError) and held one fd per level. No root needed: the library directly.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import resource
import shutil
import subprocess
import tarfile

import pytest

from images import tree
from images.extract import RootfsWriter, tar_entries
from images.importer import import_image
from images.pack import export, pack
from images.store import ImageError, Store, remove_tree
from tests.support.imgtools import member, tar_bytes

N = 2_000  # members of the archive that is cut: 512-byte header + 512-byte data block each
DEPTH = 2_100


@pytest.fixture(autouse=True)
def _deep_trees_removed(tmp_path):
    """pytest removes old temporary dirs with shutil.rmtree, which recurses: remove what a
    test made here with the iterative remove_tree (a deep image, a failed test's output)."""
    yield
    for name in os.listdir(tmp_path):
        remove_tree(str(tmp_path / name))


def members(n: int = N) -> bytes:
    return tar_bytes([member(f"d/f{i:05d}", data=b"x" * 100) for i in range(n)])


def compress(raw: bytes, how: str) -> bytes:
    if how == "gz":
        return gzip.compress(raw)
    if how == "xz":
        return lzma.compress(raw)
    if how == "bz2":
        return bz2.compress(raw)
    if how == "zst":
        return subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                              check=True).stdout
    return raw


def end_of_members(raw: bytes) -> int:
    """Offset of the end-of-archive marker (just after the last member's data)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as t:
        last = t.getmembers()[-1]
    return last.offset_data + (last.size + 511) // 512 * 512


def import_bytes(tmp_path, data: bytes, name: str = "img") -> tuple[Store, str]:
    (tmp_path / "store").mkdir(parents=True, exist_ok=True)
    src = tmp_path / "archive"
    src.write_bytes(data)
    store = Store(str(tmp_path / "store"))
    return store, import_image(store, str(src), name)


COMPRESSIONS = ["", "gz", "xz", "bz2"] + (["zst"] if shutil.which("zstd") else [])


@pytest.mark.parametrize("how", COMPRESSIONS)
@pytest.mark.parametrize("cut,needle", [
    ("boundary", "without the end-of-archive marker"),  # exactly between two members
    ("header", "inside the member header"),
    ("data", "inside the data of"),
    ("marker", "inside the member header"),  # inside the end-of-archive marker itself
])
def test_an_archive_cut_short_is_refused_and_nothing_is_stored(tmp_path, how, cut, needle):
    raw = members()
    half = raw.index(b"d/f01000")  # the name field opens member 1000's header
    at = {"boundary": half, "header": half + 200, "data": half + 512 + 50,
          "marker": end_of_members(raw) + 100}[cut]
    with pytest.raises(ImageError) as err:
        import_bytes(tmp_path, compress(raw[:at], how))
    line = str(err.value)
    assert "not a valid or complete tar archive" in line and needle in line, line
    assert "\n" not in line
    assert os.listdir(tmp_path / "store") == []  # no image, no staging directory


@pytest.mark.parametrize("how", ["gz", "xz", "bz2"] + (["zst"] if shutil.which("zstd") else []))
def test_a_compressed_stream_cut_short_is_refused(tmp_path, how):
    data = compress(members(), how)
    with pytest.raises(ImageError, match="not a valid or complete tar archive"):
        import_bytes(tmp_path, data[: len(data) // 2])
    assert os.listdir(tmp_path / "store") == []


def test_controls_complete_archives_import_every_member(tmp_path):
    """The same archive uncut imports all its files, also when it ends with one zero block
    only (GNU tar accepts "a lone zero block"), so the refusals above are about the cut."""
    raw = members()
    store, path = import_bytes(tmp_path / "a", raw)
    assert len(os.listdir(os.path.join(path, "rootfs", "d"))) == N
    lone = raw[:end_of_members(raw) + 512]
    store, path = import_bytes(tmp_path / "b", lone)
    assert len(os.listdir(os.path.join(path, "rootfs", "d"))) == N


def test_a_corrupt_header_mid_archive_is_refused(tmp_path):
    raw = bytearray(members())
    half = raw.index(b"d/f01000")
    raw[half + 148:half + 156] = b"garbage!"  # the header checksum
    with pytest.raises(ImageError, match="no valid member header at byte"):
        import_bytes(tmp_path, bytes(raw))
    assert os.listdir(tmp_path / "store") == []


def test_the_library_reader_refuses_a_cut_archive_too(tmp_path):
    """tar_entries on a TarFile the caller opened (any mode) applies the same rule."""
    raw = members(10)
    cut = raw[:raw.index(b"d/f00005")]
    for mode in ("r|", "r:"):
        with tarfile.open(fileobj=io.BytesIO(cut), mode=mode) as t:
            with RootfsWriter(str(tmp_path)) as w, pytest.raises(tarfile.ReadError,
                                                                 match="truncated"):
                w.add_all(tar_entries(t))
        remove_tree(str(tmp_path / "d"))


# ── deep trees ───────────────────────────────────────────────────────────────────────────
def deep_members(depth: int = DEPTH, leaf: bytes = b"leaf\n") -> list:
    out, name = [], ""
    for _ in range(depth):
        name = f"{name}/d" if name else "d"
        out.append(member(name, "dir"))
    out.append(member(f"{name}/leaf", data=leaf))
    return out


def open_deep(root: str, depth: int) -> int:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = sub
    return fd


@pytest.fixture
def few_fds():
    """RLIMIT_NOFILE lowered far below the depth: one fd per level would fail (EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_tree_2100_deep_imports_exports_and_is_removed(tmp_path, few_fds):
    store, path = import_bytes(tmp_path, tar_bytes(deep_members()), "deep")
    rootfs = os.path.join(path, "rootfs")
    deepest = "/".join(["d"] * DEPTH)
    with pytest.raises(OSError):  # control: no path string reaches it (over PATH_MAX)
        os.stat(os.path.join(rootfs, deepest, "leaf"))
    fd = open_deep(rootfs, DEPTH)
    try:
        assert os.read(os.open("leaf", os.O_RDONLY, dir_fd=fd), 10) == b"leaf\n"
    finally:
        os.close(fd)
    meta = store.meta("deep")
    assert meta["files"] == DEPTH + 2  # the root, every level and the leaf
    out = export(store, "deep", str(tmp_path / "deep.tar"))
    import_image(store, out, "again")
    assert store.meta("again")["digest"] == meta["digest"]
    store.remove("deep")
    store.remove("again")
    assert os.listdir(tmp_path / "store") == []


def test_opaque_whiteout_over_a_deep_lower_layer(tmp_path, few_fds):
    """Layer mode: an opaque whiteout at the top removes a 2,100-deep lower tree."""
    lower = tar_bytes(deep_members())
    upper = tar_bytes([member("d", "dir"), member("d/.wh..wh..opq"), member("d/new")])
    with RootfsWriter(str(tmp_path)) as w:
        for layer in (lower, upper):
            w.begin_layer()
            with tarfile.open(fileobj=io.BytesIO(layer), mode="r|") as t:
                w.add_all(tar_entries(t))
            w.end_layer()
        w.finish()
    assert os.listdir(tmp_path / "d") == ["new"]


def test_a_deep_member_replaced_by_a_file(tmp_path, few_fds):
    """A later member at the top replaces the whole deep directory (removed iteratively)."""
    data = tar_bytes(deep_members() + [member("d", data=b"flat\n")])
    store, path = import_bytes(tmp_path, data)
    assert open(os.path.join(path, "rootfs", "d")).read() == "flat\n"


def test_dir_cursor_holds_a_bounded_number_of_fds(tmp_path):
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for a in ("x", "y"):
            os.makedirs(tmp_path / a / "1" / "2" / "3" / "4" / "5")
        cursor = tree.DirCursor(root, keep=2)
        fd = cursor.goto(("x", "1", "2", "3", "4", "5"))
        assert len(cursor.fds) == 2 and os.listdir(fd) == []
        assert os.listdir(cursor.goto(("x", "1"))) == ["2"]  # above the fds held: walked again
        assert os.listdir(cursor.goto(("y", "1", "2"))) == ["3"]
        assert cursor.goto(()) == root and cursor.fds == []
        def opener(fd, parts, i):
            return None if parts[i] == "missing" else tree.open_dir_at(fd, parts, i)

        assert cursor.goto(("y", "missing"), opener) is None
        cursor.forget(("x",))  # the cursor is not at or below it: nothing to let go
        assert cursor.parts == ("y",)
        cursor.close()
        three = tree.DirCursor(root, keep=3)
        three.goto(("y", "1", "2"))
        three.forget(("y", "1"))  # removed: the cursor steps back to its parent
        assert three.parts == ("y",) and len(three.fds) == 1
        three.goto(("x", "1", "2", "3", "4"))
        three.forget(("x", "1"))  # its parent's fd was given up: back to the root
        assert three.parts == () and three.fds == []
    finally:
        os.close(root)


def test_remove_at_a_deep_tree_with_few_fds(tmp_path, few_fds):
    top = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.mkdir("t", dir_fd=top)
        fd = os.open("t", os.O_RDONLY, dir_fd=top)
        for i in range(DEPTH):
            os.mkdir("d", dir_fd=fd)
            if i % 100 == 0:
                os.close(os.open(f"f{i}", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
            sub = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.close(fd)
        tree.remove_at(top, "t")
        assert os.listdir(top) == []
    finally:
        os.close(top)


@pytest.mark.skipif(not shutil.which("mkfs.erofs"), reason="needs mkfs.erofs (erofs-utils)")
def test_erofs_refuses_paths_over_path_max_in_one_line(tmp_path):
    store, _ = import_bytes(tmp_path, tar_bytes(deep_members()), "deep")
    with pytest.raises(ImageError, match="over PATH_MAX.*--format squashfs"):
        pack(store, "deep", "erofs")
    assert sorted(os.listdir(store.path("deep"))) == [".meta.marshal", "meta.json", "rootfs"]
