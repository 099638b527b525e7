"""Copying a tree shifted (offset 0: no root needed) and the safety of both walks.
Ownership, devices and file capabilities: tests/integration/run/test_idshift_root.py."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from jailer.engine.idshift import _shift_value, copy_shifted, shift_in_place

MTIME = 1_600_000_000_123_456_789


def xattrs_work(path) -> bool:
    try:
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
        return True
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise


def make_tree(root) -> None:
    """Every kind of entry a rootfs has, with odd modes and fixed times."""
    os.mkdir(root)
    os.makedirs(f"{root}/a/b/c")
    with open(f"{root}/a/b/c/deep", "w") as f:
        f.write("deep\n")
    with open(f"{root}/file", "wb") as f:
        f.write(os.urandom(100_000))
    open(f"{root}/empty", "w").close()
    with open(f"{root}/sparse", "wb") as f:
        f.seek(10 << 20)
        f.write(b"end")
    with open(f"{root}/setuid", "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(f"{root}/setuid", 0o4755)
    with open(f"{root}/a/setgid", "w") as f:
        f.write("x")
    os.chmod(f"{root}/a/setgid", 0o2711)
    os.mkdir(f"{root}/tmp")
    os.chmod(f"{root}/tmp", 0o1777)
    os.mkdir(f"{root}/ro")
    with open(f"{root}/ro/inside", "w") as f:
        f.write("r")
    os.chmod(f"{root}/ro/inside", 0o444)
    os.symlink("/etc", f"{root}/etc")
    os.symlink("/etc/passwd", f"{root}/a/passwd")
    os.symlink("../../../../outside", f"{root}/a/b/rel")
    os.symlink("dangling-nowhere", f"{root}/dangling")
    os.link(f"{root}/file", f"{root}/a/b/hardlink")
    os.link(f"{root}/file", f"{root}/ro/hardlink2")
    os.mkfifo(f"{root}/a/fifo", 0o640)
    if xattrs_work(f"{root}/file"):
        os.setxattr(f"{root}/file", "user.note", b"hello")
        os.setxattr(f"{root}/a", "user.dir", b"d")
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            os.utime(os.path.join(dirpath, name), ns=(MTIME - 5, MTIME), follow_symlinks=False)
    os.chmod(f"{root}/ro", 0o555)  # after its contents: a read-only directory
    os.utime(f"{root}/ro", ns=(MTIME - 5, MTIME))
    os.utime(root, ns=(MTIME - 5, MTIME))


def describe(root) -> dict:
    """Everything copy_shifted promises to keep, per relative path."""
    out, inodes, root = {}, {}, str(root)
    for dirpath, dirs, files in os.walk(root):
        for name in [""] + dirs + files if dirpath == root else dirs + files:
            p = os.path.join(dirpath, name) if name else root
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            d = {"mode": st.st_mode, "mtime": st.st_mtime_ns, "uid": st.st_uid,
                 "gid": st.st_gid, "nlink": st.st_nlink}
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    d["data"] = f.read()
                d["link-group"] = inodes.setdefault(st.st_ino, rel)
            if stat.S_ISLNK(st.st_mode):
                d["target"] = os.readlink(p)
            else:
                d["xattrs"] = {x: os.getxattr(p, x) for x in os.listxattr(p)
                               if x.startswith("user.")}
            out[rel] = d
    return out


def test_copy_keeps_everything(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_tree(src)
    seen = []
    copy_shifted(str(src), str(dst), 0, progress=seen.append)
    a, b = describe(src), describe(dst)
    assert a.keys() == b.keys()
    for rel in a:
        assert a[rel] == b[rel], rel
    assert b["a/b/hardlink"]["link-group"] == b["file"]["link-group"]
    assert b["file"]["nlink"] == 3
    assert b["sparse"]["data"][-3:] == b"end"
    assert os.stat(dst / "sparse").st_blocks * 512 < 1 << 20  # still sparse
    assert stat.S_IMODE(b["setuid"]["mode"]) == 0o4755
    assert stat.S_IMODE(b["tmp"]["mode"]) == 0o1777
    assert stat.S_ISFIFO(b["a/fifo"]["mode"])
    if xattrs_work(src / "empty"):
        assert b["file"]["xattrs"] == {"user.note": b"hello"}
    assert seen and seen[-1] == len(a) - 1  # every entry but the top


def test_sockets_are_skipped(tmp_path):
    import socket

    src = tmp_path / "s"
    src.mkdir()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(src / "sock"))
        copy_shifted(str(src), str(tmp_path / "d"), 0)
    assert os.listdir(tmp_path / "d") == []


def test_dst_must_not_exist(tmp_path):
    make_tree(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    with pytest.raises(FileExistsError):
        copy_shifted(str(tmp_path / "src"), str(tmp_path / "dst"), 0)
    assert os.listdir(tmp_path / "dst") == []


def test_src_must_be_a_real_directory(tmp_path):
    make_tree(tmp_path / "src")
    os.symlink("src", tmp_path / "link")
    with pytest.raises(OSError):
        copy_shifted(str(tmp_path / "link"), str(tmp_path / "dst"), 0)
    assert not (tmp_path / "dst").exists()


def test_symlinks_in_src_never_lead_outside(tmp_path):
    """Links to /etc, to a directory outside, and dangling ones are copied as links; nothing
    outside dst is written and nothing outside src is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    src = tmp_path / "src"
    src.mkdir()
    os.symlink("/etc", src / "etc")
    os.symlink(str(outside), src / "out")
    os.symlink("../outside", src / "rel")
    os.mkdir(src / "d")
    os.symlink("/etc/passwd", src / "d" / "passwd")
    etc_before = sorted(os.listdir("/etc")), os.stat("/etc").st_mtime_ns
    out_before = sorted(os.listdir(outside)), os.stat(outside).st_mtime_ns
    copy_shifted(str(src), str(tmp_path / "dst"), 0)
    assert (sorted(os.listdir("/etc")), os.stat("/etc").st_mtime_ns) == etc_before
    assert (sorted(os.listdir(outside)), os.stat(outside).st_mtime_ns) == out_before
    for name in ("etc", "out", "rel", "d/passwd"):
        assert os.path.islink(tmp_path / "dst" / name)
    assert os.readlink(tmp_path / "dst" / "out") == str(outside)


def test_a_failed_copy_leaves_nothing(tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    with pytest.raises(ValueError, match="outside the valid id range"):
        copy_shifted(str(src), str(tmp_path / "dst"), 2**32)  # ids would overflow
    assert not (tmp_path / "dst").exists()


def test_shift_in_place_leaves_ids_outside_the_range(tmp_path):
    make_tree(tmp_path / "t")
    before = describe(tmp_path / "t")
    mine = os.getuid()
    old = mine + 1 if mine < 2**31 else 1  # a range that holds none of our files
    assert shift_in_place(str(tmp_path / "t"), old, 5_000_000, 10) == 0
    assert describe(tmp_path / "t") == before


def test_shift_in_place_does_not_follow_a_symlink_top(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink("d", tmp_path / "link")
    uid = os.getuid()
    # the link itself is in range [uid, uid+1) -> same ids: changed is 0, d untouched
    assert shift_in_place(str(tmp_path / "link"), uid + 1, uid, 1) == 0
    with pytest.raises(ValueError):
        shift_in_place("/", 0, 0)


def test_shift_values_of_caps_and_acls():
    def shift(i):
        return i + 1000 if i < 65536 else i

    v2 = bytes.fromhex("01000002") + bytes(16)
    assert _shift_value("security.capability", v2, shift) == v2
    v3 = bytes.fromhex("01000003") + bytes(16) + (5).to_bytes(4, "little")
    assert _shift_value("security.capability", v3, shift)[20:] == (1005).to_bytes(4, "little")
    acl = bytes.fromhex("02000000") + b"".join(
        tag.to_bytes(2, "little") + (7).to_bytes(2, "little") + ident.to_bytes(4, "little")
        for tag, ident in ((1, 2**32 - 1), (2, 33), (4, 2**32 - 1), (8, 70000)))
    out = _shift_value("system.posix_acl_access", acl, shift)
    ids = [int.from_bytes(out[o + 4:o + 8], "little") for o in range(4, len(out), 8)]
    assert ids == [2**32 - 1, 1033, 2**32 - 1, 70000]
    assert _shift_value("user.x", b"abc", shift) == b"abc"
