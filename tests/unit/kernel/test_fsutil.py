"""The fd-based helpers root uses in directories others control (no root needed)."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time

import pytest

from jailer.kernel import fsutil, proc
from jailer.objects import state


def _tree(top) -> None:
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_text("x")
    (top / "a" / "g").write_text("y")
    os.mkfifo(top / "a" / "fifo")


def test_remove_tree_removes_everything(tmp_path):
    _tree(tmp_path / "t")
    fsutil.remove_tree(str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()
    fsutil.remove_tree(str(tmp_path / "t"))  # missing is fine


def test_remove_tree_never_follows_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    _tree(victim)
    t = tmp_path / "t"
    t.mkdir()
    (t / "dirlink").symlink_to(victim)
    (t / "sub").mkdir()
    (t / "sub" / "filelink").symlink_to(victim / "a" / "g")
    # control: a naive recursive delete that follows links does reach the victim
    naive = tmp_path / "naive"
    naive.mkdir()
    shutil.copytree(victim, tmp_path / "victim2", ignore=lambda d, names: ["fifo"])
    (naive / "dirlink").symlink_to(tmp_path / "victim2")
    for root, _dirs, files in os.walk(naive, followlinks=True, topdown=False):
        for n in files:
            os.unlink(os.path.join(root, n))
    assert not (tmp_path / "victim2" / "a" / "g").exists()

    fsutil.remove_tree(str(t))
    assert not t.exists()
    assert (victim / "a" / "b" / "f").read_text() == "x"
    assert (victim / "a" / "g").read_text() == "y"


def test_remove_tree_through_a_symlinked_parent_is_refused(tmp_path):
    victim = tmp_path / "victim"
    _tree(victim)
    (tmp_path / "link").symlink_to(victim)
    assert os.path.exists(tmp_path / "link" / "a" / "g")  # control: the path reaches it
    with pytest.raises(fsutil.UnsafePath):
        fsutil.remove_tree(str(tmp_path / "link" / "a"))
    assert (victim / "a" / "g").exists()
    fsutil.remove_tree(str(tmp_path / "link"))  # the last component: only the link goes
    assert not os.path.lexists(tmp_path / "link") and (victim / "a" / "g").exists()


def test_remove_at_a_symlink_unlinks_only_it(tmp_path):
    victim = tmp_path / "victim"
    _tree(victim)
    (tmp_path / "l").symlink_to(victim)
    fd = os.open(tmp_path, fsutil.DIR_FLAGS)
    try:
        fsutil.remove_at(fd, "l")
    finally:
        os.close(fd)
    assert not os.path.lexists(tmp_path / "l") and (victim / "a" / "g").exists()


def test_remove_tree_survives_a_swap_race(tmp_path):
    """A thread keeps swapping a directory of the tree for a symlink to the victim while the
    tree is removed: the victim stays whole."""
    victim = tmp_path / "victim"
    _tree(victim)
    for _ in range(20):
        t = tmp_path / "t"
        for i in range(50):
            (t / f"d{i}").mkdir(parents=True)
            (t / f"d{i}" / "f").write_text("z")
        stop = threading.Event()

        def swap(t=t, stop=stop) -> None:
            while not stop.is_set():
                for i in range(50):
                    d = t / f"d{i}"
                    try:
                        os.rename(d, t / f"x{i}")
                        os.symlink(victim / "a", d)
                    except OSError:
                        pass

        th = threading.Thread(target=swap)
        th.start()
        try:
            for _attempt in range(5):
                try:
                    fsutil.remove_tree(str(t))
                    break
                except OSError:
                    time.sleep(0.001)
        finally:
            stop.set()
            th.join()
        fsutil.remove_tree(str(t))
        assert (victim / "a" / "g").read_text() == "y"
        assert (victim / "a" / "b" / "f").exists()


def test_open_dir_refuses_symlinks_and_foreign_owners(tmp_path):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    fd = fsutil.open_dir(str(tmp_path / "real" / "sub"))
    os.close(fd)
    with pytest.raises(fsutil.UnsafePath, match="symlink"):
        fsutil.open_dir(str(tmp_path / "link" / "sub"))
    with pytest.raises(fsutil.UnsafePath, match="'..'"):
        fsutil.open_dir(str(tmp_path / "real" / ".." / "real"))
    me = os.geteuid()
    fd = fsutil.open_dir(str(tmp_path / "real"), owner=me)
    os.close(fd)
    if me == 0:
        os.chown(tmp_path / "real", 12345, 12345)
        with pytest.raises(fsutil.UnsafePath, match="belongs to uid 12345"):
            fsutil.open_dir(str(tmp_path / "real" / "sub"), owner=54321)
        fd = fsutil.open_dir(str(tmp_path / "real" / "sub"), owner=12345)
        os.close(fd)
    else:
        with pytest.raises(fsutil.UnsafePath, match="belongs to uid"):
            fsutil.open_dir(str(tmp_path / "real"), owner=me + 1)


def test_open_dir_creates_and_relative(tmp_path):
    top = os.open(tmp_path, fsutil.DIR_FLAGS)
    try:
        fd = fsutil.open_dir("x/y/z", dir_fd=top, create=True, mode=0o700)
        os.close(fd)
        assert stat.S_IMODE(os.stat(tmp_path / "x" / "y" / "z").st_mode) == 0o700
        (tmp_path / "x" / "l").symlink_to(tmp_path)
        with pytest.raises(fsutil.UnsafePath):
            fsutil.open_dir("x/l/q", dir_fd=top, create=True)
        assert not (tmp_path / "q").exists()
    finally:
        os.close(top)


def test_walk_at_lists_bottom_up_and_skips_links(tmp_path):
    _tree(tmp_path / "t")
    (tmp_path / "t" / "ln").symlink_to(tmp_path)
    fd = os.open(tmp_path / "t", fsutil.DIR_FLAGS)
    try:
        seen = [(rel, sorted(dirs), sorted(others)) for rel, _fd, dirs, others
                in fsutil.walk_at(fd)]
    finally:
        os.close(fd)
    assert seen == [("a/b", [], ["f"]), ("a", ["b"], ["fifo", "g"]), ("", ["a"], ["ln"])]


def test_read_file_at_never_blocks_on_a_fifo_nor_follows(tmp_path):
    os.mkfifo(tmp_path / "state.json")
    (tmp_path / "l").symlink_to("/etc/hostname")
    (tmp_path / "ok").write_text("{}")
    fd = os.open(tmp_path, fsutil.DIR_FLAGS)
    try:
        t0 = time.monotonic()
        with pytest.raises(OSError):
            fsutil.read_file_at(fd, "state.json")
        assert time.monotonic() - t0 < 1
        with pytest.raises(OSError):
            fsutil.read_file_at(fd, "l")
        assert fsutil.read_file_at(fd, "ok") == b"{}"
    finally:
        os.close(fd)


def test_write_file_at(tmp_path):
    fd = os.open(tmp_path, fsutil.DIR_FLAGS)
    try:
        fsutil.write_file_at(fd, "f", b"one")
        with pytest.raises(FileExistsError):
            fsutil.write_file_at(fd, "f", b"two")
        fsutil.write_file_at(fd, "f", b"three", replace=True)
        (tmp_path / "l").symlink_to(tmp_path / "target")
        with pytest.raises(FileExistsError):
            fsutil.write_file_at(fd, "l", b"x")
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_text() == "three"
    assert not (tmp_path / "target").exists()
    assert sorted(os.listdir(tmp_path)) == ["f", "l"]


@pytest.mark.parametrize("cid,ok", [("abc", True), ("a.b-c_d+e", True), ("0" * 64, True),
                                    ("", False), (".", False), ("..", False),
                                    ("../../../../tmp/x", False), ("a/b", False),
                                    (None, False), (5, False), ("x\n", False)])
def test_valid_id(cid, ok):
    assert state.valid_id(cid) is ok


def test_untrusted_state_keeps_no_paths():
    st = state.untrusted({"id": "../../x", "pid": "1/../../tmp/fifo", "freezer": "/tmp/fifo",
                          "cgroup": "../../..", "status": "running", "monitor": "pid:x:y"})
    assert st == {"status": "running", "monitor": "pid:x:y"}
    assert not proc.alive("1/../self", None, None)
    assert not state.monitor_alive(st)


def test_remove_tree_of_read_only_dirs_of_our_own(tmp_path):
    (tmp_path / "t" / "ro").mkdir(parents=True)
    (tmp_path / "t" / "ro" / "f").write_text("x")
    os.chmod(tmp_path / "t" / "ro", 0o500)
    fsutil.remove_tree(str(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_remove_tree_ignore_errors(tmp_path):
    """``ignore_errors`` (for our own temp dirs): refusals and failures raise nothing, and
    what was unsafe to remove stays."""
    victim = tmp_path / "victim"
    _tree(victim)
    (tmp_path / "link").symlink_to(victim)
    fsutil.remove_tree(str(tmp_path / "link" / "a"), ignore_errors=True)
    assert (victim / "a" / "g").exists()
    fsutil.remove_tree(str(tmp_path / "nope" / "x"), ignore_errors=True)
    fsutil.remove_tree(str(victim), ignore_errors=True)
    assert not victim.exists()


def test_plain_copy_for_someone_elses_hands(tmp_path):
    """delegate's copy: no setuid/setgid bits, no device nodes, no host (v2) capabilities,
    ids mapped by function, made in a dir fd; a control copy keeps them all."""
    import struct

    from jailer.engine.idshift import CAPS, copy_shifted

    src = tmp_path / "src"
    src.mkdir()
    (src / "su").write_text("x")
    os.chmod(src / "su", 0o6755)
    v2 = struct.pack("<IIIII", 0x02000000, 1 << 13, 0, 0, 0)  # cap_net_raw, not namespaced
    caps = True
    try:
        os.setxattr(src / "su", CAPS, v2)
    except OSError:
        caps = False  # not root: no security.* xattrs
    dev = os.geteuid() == 0
    if dev:
        os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    out = os.open(tmp_path, fsutil.DIR_FLAGS)
    try:
        copy_shifted(str(src), "plain", 0, dst_dir_fd=out, plain=True,
                     uid_map=lambda i: i, gid_map=lambda i: i)
        copy_shifted(str(src), "control", 0, dst_dir_fd=out)
    finally:
        os.close(out)
    assert stat.S_IMODE(os.stat(tmp_path / "plain" / "su").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "control" / "su").st_mode) == 0o6755
    assert not os.path.lexists(tmp_path / "plain" / "null")
    if dev:
        assert stat.S_ISCHR(os.lstat(tmp_path / "control" / "null").st_mode)
    if caps:
        assert CAPS not in os.listxattr(tmp_path / "plain" / "su")
        assert os.getxattr(tmp_path / "control" / "su", CAPS) == v2


def test_mounted_under_reads_mountinfo_escapes_and_same_filesystem_binds(tmp_path):
    """Mount points at or below a path, octal escapes undone (a space, a non-ASCII name),
    a bind of a directory of the same filesystem included; a sibling with the same prefix
    is not below it."""
    from jailer.kernel.fsutil import mounted_under

    info = tmp_path / "mountinfo"
    info.write_bytes(
        b"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
        b"2 1 8:1 /srv/img /run/c/mounts rw - ext4 /dev/sda1 rw\n"
        b"3 2 0:5 / /run/c/mounts/proc rw - proc proc rw\n"
        b"4 1 0:6 / /run/c/mounts2 rw - tmpfs t rw\n"
        b"5 1 0:7 / /run/a\\040b/\xc3\xbc rw - tmpfs t rw\n")
    assert mounted_under("/run/c/mounts", str(info)) == ["/run/c/mounts",
                                                         "/run/c/mounts/proc"]
    assert mounted_under("/run/c/", str(info)) == ["/run/c/mounts", "/run/c/mounts/proc",
                                                   "/run/c/mounts2"]
    assert mounted_under("/run/a b", str(info)) == ["/run/a b/ü"]
    assert len(mounted_under("/", str(info))) == 5
    assert mounted_under("/srv", str(info)) == []
