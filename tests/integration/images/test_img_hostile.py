"""Hostile archives: every escape is refused (one clear line naming the member, nothing left in
the store) or neutralised (a warning, the result confined to the image), and nothing is ever
written outside the target: the ``sentinel`` directory stays as it was."""

from __future__ import annotations

import os
import stat

import pytest

from tests.support.imgtools import (
    member,
    one_line_error,
    store_entries,
    tar_bytes,
    write_oci,
    write_tar,
)

pytestmark = pytest.mark.root

UP = "../" * 40  # far more than enough to climb from the staging dir to /


def unchanged(sentinel) -> None:
    assert sorted(os.listdir(sentinel)) == ["target"]
    st = os.stat(sentinel / "target")
    assert st.st_nlink == 1 and (sentinel / "target").read_text() == "host file\n"


def refused(jailer, data_dir, sentinel, archive, name, *needles, extra=()):
    before = store_entries(data_dir)
    r = jailer("image", "import", str(archive), "--name", name, *extra)
    line = one_line_error(r, "refused archive member", *needles)
    assert store_entries(data_dir) == before  # no image, no staging directory
    unchanged(sentinel)
    return line


def imported(jailer, data_dir, sentinel, archive, name, *extra):
    r = jailer("image", "import", str(archive), "--name", name, *extra)
    assert r.returncode == 0, r.stderr
    unchanged(sentinel)
    return r, data_dir / "images" / name / "rootfs"


def test_path_traversal_is_refused(jailer, new_name, tmp_path, data_dir, sentinel):
    evil = f"{UP}{str(sentinel).lstrip('/')}/pwned"
    archive = write_tar(tmp_path / "a.tar", [member("ok", data=b"1"), member(evil, data=b"x")])
    line = refused(jailer, data_dir, sentinel, archive, new_name(), "'..'")
    assert "pwned" in line


def test_traversal_inside_a_name_is_refused_too(jailer, new_name, tmp_path, data_dir,
                                                sentinel):
    archive = write_tar(tmp_path / "a.tar", [member("etc/../../x", data=b"x")])
    refused(jailer, data_dir, sentinel, archive, new_name(), "etc/../../x")


def test_absolute_names_are_confined_to_the_image(jailer, new_name, tmp_path, data_dir,
                                                  sentinel):
    archive = write_tar(tmp_path / "a.tar", [member(f"{sentinel}/pwned", data=b"x")])
    r, root = imported(jailer, data_dir, sentinel, archive, new_name())
    assert "removed the leading '/'" in r.stderr
    assert (root / str(sentinel).lstrip("/") / "pwned").read_bytes() == b"x"


def test_symlink_pointing_out_of_the_image_is_refused(jailer, new_name, tmp_path, data_dir,
                                                      sentinel):
    archive = write_tar(tmp_path / "a.tar", [
        member("usr", "dir"), member("usr/evil", "symlink", link=f"../{UP}{sentinel}")])
    refused(jailer, data_dir, sentinel, archive, new_name(), "usr/evil",
            "points outside the image")


@pytest.mark.parametrize("target", ["ABS", "etc"])
def test_writing_through_a_symlink_is_refused(jailer, new_name, tmp_path, data_dir, sentinel,
                                              target):
    link = str(sentinel) if target == "ABS" else target
    archive = write_tar(tmp_path / "a.tar", [
        member("etc", "dir"),
        member("evil", "symlink", link=link),
        member("evil/pwned", data=b"x")])
    refused(jailer, data_dir, sentinel, archive, new_name(), "evil/pwned",
            "goes through the symlink 'evil'")


def test_absolute_symlinks_are_kept_but_never_followed(jailer, new_name, tmp_path, data_dir,
                                                       sentinel):
    archive = write_tar(tmp_path / "a.tar", [
        member("sh", "symlink", link="/bin/busybox"),
        member("out", "symlink", link=str(sentinel / "target"))])
    r, root = imported(jailer, data_dir, sentinel, archive, new_name())
    assert os.readlink(root / "out") == str(sentinel / "target")  # resolves inside a jail


def test_symlink_replaced_by_a_directory_mid_archive(jailer, new_name, tmp_path, data_dir,
                                                     sentinel):
    archive = write_tar(tmp_path / "a.tar", [
        member("x", "symlink", link=str(sentinel)),
        member("x", "dir"),
        member("x/pwned", data=b"inside\n")])
    r, root = imported(jailer, data_dir, sentinel, archive, new_name())
    assert not os.path.islink(root / "x") and (root / "x/pwned").read_text() == "inside\n"


def test_file_replaced_by_a_symlink_then_written_is_refused(jailer, new_name, tmp_path,
                                                            data_dir, sentinel):
    archive = write_tar(tmp_path / "a.tar", [
        member("d", "dir"),
        member("d", "symlink", link=str(sentinel)),
        member("d/pwned", data=b"x")])
    refused(jailer, data_dir, sentinel, archive, new_name(), "goes through the symlink")


@pytest.mark.parametrize("how,needle", [
    ("dotdot", "'..'"),
    ("absolute", "is not in the image"),  # the '/' is stripped: an image path, not there
    ("via-symlink", "goes through the symlink 's'"),
])
def test_hardlink_escapes_are_refused(jailer, new_name, tmp_path, data_dir, sentinel, how,
                                      needle):
    linkname = {"dotdot": f"{UP}{str(sentinel).lstrip('/')}/target",
                "absolute": f"{sentinel}/target", "via-symlink": "s/target"}[how]
    archive = write_tar(tmp_path / "a.tar", [
        member("s", "symlink", link=str(sentinel)),
        member("h", "hardlink", link=linkname)])
    refused(jailer, data_dir, sentinel, archive, new_name(), "'h'", needle)


def test_device_nodes_only_when_allowed(jailer, new_name, tmp_path, data_dir, sentinel):
    archive = write_tar(tmp_path / "a.tar", [
        member("dev", "dir"),
        member("dev/mem", "chr", dev=(1, 1), mode=0o600),
        member("dev/sda", "blk", dev=(8, 0), mode=0o660),
        member("dev/null", "chr", dev=(1, 3), mode=0o666),
        member("fifo", "fifo")])
    r, root = imported(jailer, data_dir, sentinel, archive, new_name())
    assert "skipped device node 'dev/mem'" in r.stderr and "--allow-devices" in r.stderr
    assert os.listdir(root / "dev") == [] and stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    r, root = imported(jailer, data_dir, sentinel, archive, new_name(), "--allow-devices")
    assert "skipped" not in r.stderr
    st = os.lstat(root / "dev/mem")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 1
    assert stat.S_ISBLK(os.lstat(root / "dev/sda").st_mode)


def test_setuid_bits_and_file_capabilities_only_when_asked(jailer, new_name, tmp_path,
                                                           data_dir, sentinel):
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    archive = write_tar(tmp_path / "a.tar", [
        member("su", data=b"#!/bin/sh\n", mode=0o4755),
        member("wall", data=b"#!/bin/sh\n", mode=0o2755),
        member("ping", data=b"#!/bin/sh\n", mode=0o755,
               xattrs={"security.capability": cap}),
        member("shared", "dir", mode=0o2775),
        member("mark", data=b"", xattrs={"trusted.overlay.opaque": "y", "user.ok": "1"})])
    r, root = imported(jailer, data_dir, sentinel, archive, new_name())
    assert "cleared the setuid bit of 'su'" in r.stderr
    assert "cleared the setgid bit of 'wall'" in r.stderr
    assert "dropped the file capabilities of 'ping'" in r.stderr
    assert "trusted.overlay.opaque" in r.stderr
    assert stat.S_IMODE(os.stat(root / "su").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "wall").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "shared").st_mode) == 0o2775  # harmless on dirs
    assert "security.capability" not in os.listxattr(root / "ping")
    assert os.listxattr(root / "mark") == ["user.ok"]
    r, root = imported(jailer, data_dir, sentinel, archive, new_name(), "--keep-setuid")
    assert "cleared" not in r.stderr
    assert stat.S_IMODE(os.stat(root / "su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(root / "wall").st_mode) == 0o2755
    assert "security.capability" in os.listxattr(root / "ping")


def test_tar_bomb_beyond_the_size_limit(jailer, new_name, tmp_path, data_dir, sentinel):
    zeros = bytes(4 << 20)
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(tar_bytes([member(f"z{i}", data=zeros) for i in range(4)], "gz"))
    assert archive.stat().st_size < 200_000  # 16 MiB unpacked from a small file
    before = store_entries(data_dir)
    r = jailer("image", "import", str(archive), "--name", new_name(), "--max-size", "10M")
    one_line_error(r, "more than 10.0 MiB", "'z2'", "tar bomb", "--max-size")
    assert store_entries(data_dir) == before
    unchanged(sentinel)


def test_tar_bomb_beyond_the_entry_limit(jailer, new_name, tmp_path, data_dir, sentinel):
    archive = write_tar(tmp_path / "many.tar", [member(f"f{i}") for i in range(300)])
    before = store_entries(data_dir)
    r = jailer("image", "import", str(archive), "--name", new_name(), "--max-entries", "100")
    one_line_error(r, "more than 100 entries", "tar bomb", "--max-entries")
    assert store_entries(data_dir) == before


def test_hostile_layers(jailer, new_name, tmp_path, data_dir, sentinel):
    """A whiteout naming '..' and a layer writing through a lower layer's symlink."""
    lower = tar_bytes([member("etc", "dir"), member("link", "symlink", link=str(sentinel))])
    for upper, needle in ((tar_bytes([member("etc/.wh..."), member("etc/x")]), "whiteout"),
                          (tar_bytes([member("link/pwned", data=b"x")]),
                           "goes through the symlink 'link'")):
        layout = tmp_path / f"layout-{needle[:4]}"
        write_oci(layout, [lower, upper], {})
        refused(jailer, data_dir, sentinel, layout, new_name(), needle)


def test_truncated_and_corrupt_archives(jailer, new_name, tmp_path, data_dir, sentinel):
    good = tar_bytes([member("a", data=os.urandom(200_000))], "gz")
    for label, data in (("truncated", good[: len(good) // 2]),
                        ("corrupt", good[:100] + b"\0" * 500 + good[600:])):
        path = tmp_path / f"{label}.tar.gz"
        path.write_bytes(data)
        before = store_entries(data_dir)
        one_line_error(jailer("image", "import", str(path), "--name", new_name()),
                       "not a valid")
        assert store_entries(data_dir) == before
