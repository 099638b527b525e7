"""The image library's pieces without the CLI (no root needed): apt sources, names, sniffing,
the writer's layer rules, in-root path resolution, progress rendering, loop structs."""

from __future__ import annotations

import io
import os
import struct
import tarfile

import pytest

from images import debian, loop, tree
from images.archive import describe, sniff
from images.extract import ExtractError, Policy, RootfsWriter, extract_tar, tar_entries
from images.progress import TerminalProgress
from images.store import Store, valid_name
from tests.support.imgtools import member, tar_bytes


def test_apt_sources_and_default_mirror(tmp_path):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# comment\ndeb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ trixie main\n")
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://off.example/debian\nSuites: sid\n"
        "Enabled: no\n\nTypes: deb\nURIs: https://sec.example/debian-security\n"
        "Suites: bookworm-security\n")
    assert debian.apt_sources(str(etc)) == [
        ("http://one.example/debian/", ["trixie"]),
        ("http://two.example/debian", ["bookworm", "bookworm-updates"]),
        ("https://sec.example/debian-security", ["bookworm-security"])]
    assert debian.default_mirror("bookworm", str(etc)) == "http://two.example/debian"
    assert debian.default_mirror("trixie", str(etc)) == "http://one.example/debian"
    assert debian.default_mirror("forky", str(etc)) == "http://one.example/debian"
    assert debian.default_mirror("x", str(tmp_path / "none")) == debian.DEFAULT_MIRROR


@pytest.mark.parametrize("name,ok", [("busybox", True), ("debian-12.1_x", True), ("9", True),
                                     ("", False), ("Debian", False), ("-a", False),
                                     (".a", False), ("a/b", False), ("a" * 65, False)])
def test_names(name, ok):
    assert valid_name(name) is ok


def test_sniff_and_describe():
    assert sniff(b"\x1f\x8b\x08") == "gzip"
    assert sniff(b"\x28\xb5\x2f\xfd....") == "zstd"
    assert sniff(tar_bytes([member("a")])[:512]) == "tar"
    assert sniff(b"hello") is None
    err = tarfile.ReadError("file could not be opened successfully:\n- method gz: "
                            "ReadError('bad checksum')\n- method tar: ReadError('x')")
    assert describe(err, "gzip") == "ReadError('bad checksum')"


def extract(dest, *layers: bytes, policy: Policy | None = None) -> list[str]:
    warnings: list[str] = []
    with RootfsWriter(str(dest), policy, warnings.append) as w:
        for data in layers:
            if len(layers) > 1:
                w.begin_layer()
            with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as t:
                w.add_all(tar_entries(t))
            w.end_layer()
        w.finish()
    return warnings


def test_whiteouts_never_hide_their_own_layer(tmp_path):
    lower = tar_bytes([member("d", "dir"), member("d/old"), member("f", data=b"lower")])
    upper = tar_bytes([member("d/new"), member("d/.wh..wh..opq"), member("f", data=b"upper"),
                       member(".wh.f"), member(".wh.missing")])
    extract(tmp_path, lower, upper)
    assert os.listdir(tmp_path / "d") == ["new"]
    assert (tmp_path / "f").read_bytes() == b"upper"


def test_directory_modes_applied_last(tmp_path):
    extract(tmp_path, tar_bytes([member("ro", "dir", mode=0o555), member("ro/f", data=b"x"),
                                 member("ro/sub", "dir", mode=0o500)]))
    assert oct(os.stat(tmp_path / "ro").st_mode & 0o7777) == "0o555"
    assert (tmp_path / "ro/f").read_bytes() == b"x"


def test_extract_tar_removes_partial_output(tmp_path):
    data = tar_bytes([member("a", data=b"1"), member("b", data=b"2"),
                      member("c", "symlink", link="../../x")])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as t:
        with pytest.raises(ExtractError, match="'c'.*points outside"):
            extract_tar(t, str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_open_in_root_resolves_links_inside_the_root(tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/sh").write_text("inner")
    os.symlink("usr/bin", tmp_path / "bin")
    os.symlink("/usr/bin/sh", tmp_path / "usr/bin/abs")
    os.symlink("../../../../../../etc/hostname", tmp_path / "up")
    for rel in ("bin/sh", "bin/abs", "/usr/../../bin/sh"):
        fd = tree.open_in_root(str(tmp_path), rel)
        assert os.read(fd, 10) == b"inner"
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        tree.open_in_root(str(tmp_path), "up")  # /etc/hostname of the root, not the host's


def test_store_users_and_packed_rootfs(tmp_path):
    store = Store(str(tmp_path))
    (tmp_path / "x" / "rootfs").mkdir(parents=True)
    store.add_user("x", "abc", "root")
    assert store.users("x") == {"abc": "root"}
    store.remove_user("x", "abc")
    assert store.users("x") == {}
    from images import packed_rootfs

    assert packed_rootfs(store, "x") is None
    (tmp_path / "x" / "x.squashfs").write_bytes(b"hsqs")
    store.write_meta("x", {"packed": {"squashfs": "x.squashfs"}})
    assert packed_rootfs(store, "x") == (str(tmp_path / "x" / "x.squashfs"), "squashfs")


def test_terminal_progress_draws_a_bar_and_clears_it():
    out = io.StringIO()
    p = TerminalProgress(out)
    p.start("import x", 1000)
    p.advance(500)
    p.done()
    text = out.getvalue()
    assert "import x [" in text and "0%" in text and text.endswith("\r\x1b[K")


def test_loop_structs_match_the_kernel_abi():
    assert struct.calcsize(loop._INFO64) == 232
    assert struct.calcsize(loop._CONFIG) == 304


def test_an_interrupted_import_leaves_nothing_in_the_store(tmp_path):
    from images import importer

    store = Store(str(tmp_path / "store"))
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_bytes([member("a", data=b"1"), member("su", mode=0o4755),
                                   member("b", data=b"2")]))

    def interrupt(msg: str) -> None:  # the first warning stands in for Ctrl-C / SIGTERM
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        importer.import_image(store, str(archive), "x", warn=interrupt)
    assert os.listdir(store.root) == []
    importer.import_image(store, str(archive), "x")
    assert store.list()[0]["name"] == "x" and os.listdir(store.root) == ["x"]


def test_absurd_attributes_are_one_clear_refusal(tmp_path):
    ti, _ = member("f")
    ti.uid = 1 << 40
    data = tar_bytes([(ti, b"")])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as t:
        with pytest.raises(ExtractError, match="'f': invalid attributes"):
            extract_tar(t, str(tmp_path), Policy(keep_owner=True))
