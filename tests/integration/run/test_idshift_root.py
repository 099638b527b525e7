"""As root: owners shifted, privileged bits and file capabilities kept, devices recreated, and
newuidmap/newgidmap mapping a service user's namespace to its /etc/subuid range."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import time
import uuid

import pytest

from jailer.engine import subids
from jailer.engine.idshift import copy_shifted, shift_in_place

pytestmark = pytest.mark.root

CAPS = "security.capability"
ACL = "system.posix_acl_access"
DEFACL = "system.posix_acl_default"
# cap_net_raw+ep (what `setcap cap_net_raw+ep` writes): revision 2, effective flag
CAP_NET_RAW_V2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
OLD, NEW = 2_000_000, 2_000_100  # overlapping ranges: nothing may be shifted twice


def cap_v3(rootid: int) -> bytes:
    return struct.pack("<IIIIII", 0x03000001, 1 << 13, 0, 0, 0, rootid)


def acl(*named: tuple[int, int]) -> bytes:
    """A valid access ACL with named (tag, id) entries: 2 = user, 8 = group."""
    entries = [(1, 7, 2**32 - 1), *[(t, 5, i) for t, i in named], (4, 5, 2**32 - 1),
               (0x10, 7, 2**32 - 1), (0x20, 4, 2**32 - 1)]
    entries.sort(key=lambda e: (e[0], e[2]))
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def acl_ids(value: bytes) -> list[int]:
    return [struct.unpack_from("<HHI", value, o)[2] for o in range(4, len(value), 8)
            if struct.unpack_from("<H", value, o)[0] in (2, 8)]


def touch(path, uid: int, gid: int, mode: int = 0o644, data: bytes = b"x") -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def test_copy_shifts_owners_and_keeps_privileged_bits(tmp_path):
    src, dst, off = tmp_path / "src", tmp_path / "dst", 3_000_000
    src.mkdir()
    os.chown(src, 0, 0)
    os.mkdir(src / "home")
    os.chown(src / "home", 1000, 1000)
    touch(src / "home" / "f", 1000, 100)
    touch(src / "ping", 0, 0, 0o4755, open("/bin/true", "rb").read())
    os.setxattr(src / "ping", CAPS, CAP_NET_RAW_V2)
    touch(src / "v3", 0, 0, 0o755)
    os.setxattr(src / "v3", CAPS, cap_v3(1000))
    touch(src / "nobody", 65534, 65534, 0o2750)
    os.setxattr(src / "nobody", ACL, acl((2, 7), (8, 9)))
    os.setxattr(src / "home", DEFACL, acl((2, 1000)))
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chown(src / "null", 0, 5)
    os.symlink("/etc/shadow", src / "link")
    os.chown(src / "link", 7, 7, follow_symlinks=False)
    os.link(src / "ping", src / "ping2")

    copy_shifted(str(src), str(dst), off)

    def owner(p):
        st = os.lstat(p)
        return st.st_uid, st.st_gid

    assert owner(dst) == (off, off)
    assert owner(dst / "home") == (off + 1000, off + 1000)
    assert owner(dst / "home" / "f") == (off + 1000, off + 100)
    assert owner(dst / "ping") == (off, off)
    assert stat.S_IMODE(os.stat(dst / "ping").st_mode) == 0o4755
    assert os.getxattr(dst / "ping", CAPS) == CAP_NET_RAW_V2
    assert os.stat(dst / "ping").st_ino == os.stat(dst / "ping2").st_ino
    assert os.getxattr(dst / "v3", CAPS) == cap_v3(off + 1000)
    assert owner(dst / "nobody") == (off + 65534, off + 65534)
    assert os.stat(dst / "nobody").st_mode == os.stat(src / "nobody").st_mode  # ACL's mask
    assert os.stat(dst / "nobody").st_mode & stat.S_ISGID
    assert acl_ids(os.getxattr(dst / "nobody", ACL)) == [off + 7, off + 9]
    assert acl_ids(os.getxattr(dst / "home", DEFACL)) == [off + 1000]
    st = os.lstat(dst / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert owner(dst / "null") == (off, off + 5)
    assert owner(dst / "link") == (off + 7, off + 7)
    assert os.readlink(dst / "link") == "/etc/shadow"
    assert owner("/etc/shadow")[0] == 0


def test_shift_in_place_moves_only_the_range(tmp_path):
    t = tmp_path / "t"
    t.mkdir()
    os.chown(t, OLD, OLD)
    inside = {"zero": (OLD, OLD), "five": (OLD + 5, OLD + 6), "last": (OLD + 65535, OLD),
              "mixed": (OLD + 1, 42)}
    outside = {"root": (0, 0), "below": (OLD - 1, OLD - 1), "above": (OLD + 65536, 7),
               "host": (1000, 1000)}
    for name, (u, g) in {**inside, **outside}.items():
        touch(t / name, u, g)
    touch(t / "suid", OLD, OLD, 0o6755, open("/bin/true", "rb").read())
    os.setxattr(t / "suid", CAPS, CAP_NET_RAW_V2)
    touch(t / "v3", OLD, OLD, 0o755)
    os.setxattr(t / "v3", CAPS, cap_v3(OLD))
    os.link(t / "five", t / "five-again")
    os.mkdir(t / "d")
    os.chown(t / "d", OLD + 3, OLD + 3)
    os.chmod(t / "d", 0o2775)
    os.setxattr(t / "d", DEFACL, acl((2, OLD + 7), (2, 42)))
    os.mkfifo(t / "d" / "fifo")
    os.chown(t / "d" / "fifo", OLD + 2, OLD + 2)
    os.mknod(t / "d" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chown(t / "d" / "null", OLD, OLD)
    target = tmp_path / "target"  # outside the tree, owned in range: must stay
    touch(target, OLD + 9, OLD + 9)
    os.symlink(target, t / "d" / "link")
    os.chown(t / "d" / "link", OLD + 4, OLD + 4, follow_symlinks=False)
    os.symlink("/etc", t / "etc")  # owned by root: not in range
    (t / "mnt").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "jltest", str(t / "mnt")], check=True)
    try:
        touch(t / "mnt" / "other-fs", OLD, OLD)
        changed = shift_in_place(str(t), OLD, NEW)
        assert os.lstat(t / "mnt" / "other-fs").st_uid == OLD
    finally:
        subprocess.run(["umount", str(t / "mnt")], check=True)

    def owner(p):
        st = os.lstat(p)
        return st.st_uid, st.st_gid

    d = NEW - OLD
    for name, (u, g) in inside.items():
        assert owner(t / name) == (u + d, g + d if g >= OLD else g), name
    for name, ids in outside.items():
        assert owner(t / name) == ids, name
    assert owner(t) == (NEW, NEW)
    assert owner(t / "suid") == (NEW, NEW)
    assert stat.S_IMODE(os.stat(t / "suid").st_mode) == 0o6755
    assert os.getxattr(t / "suid", CAPS) == CAP_NET_RAW_V2
    assert os.getxattr(t / "v3", CAPS) == cap_v3(NEW)
    assert owner(t / "five-again") == (OLD + 5 + d, OLD + 6 + d)  # once, not twice
    assert owner(t / "d") == (OLD + 3 + d,) * 2
    assert stat.S_IMODE(os.stat(t / "d").st_mode) == 0o2775
    assert acl_ids(os.getxattr(t / "d", DEFACL)) == [42, OLD + 7 + d]
    assert owner(t / "d" / "fifo") == (OLD + 2 + d,) * 2
    assert owner(t / "d" / "null") == (NEW, NEW)
    assert owner(t / "d" / "link") == (OLD + 4 + d,) * 2
    assert owner(target) == (OLD + 9, OLD + 9)
    assert owner(t / "etc") == (0, 0) and owner("/etc") == (0, 0)
    # t, zero, five(+link), last, mixed, suid, v3, d, fifo, null, link
    assert changed == 11
    assert shift_in_place(str(t), OLD + 70000, NEW, 10) == 0


def test_busybox_rootfs_round_trip(rootfs, tmp_path):
    """The image's rootfs, copied to a range and shifted back, matches the original."""
    dst = tmp_path / "copy"
    t0 = time.perf_counter()
    copy_shifted(rootfs, str(dst), OLD)
    t1 = time.perf_counter()
    n = shift_in_place(str(dst), OLD, 0)
    t2 = time.perf_counter()
    print(f"busybox rootfs: copy {t1 - t0:.3f}s, shift {t2 - t1:.3f}s, {n} entries")
    entries = 0
    for dirpath, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            a = os.lstat(os.path.join(dirpath, name))
            b = os.lstat(os.path.join(dst, os.path.relpath(dirpath, rootfs), name))
            assert (a.st_mode, a.st_uid, a.st_gid, a.st_mtime_ns, a.st_size) == \
                (b.st_mode, b.st_uid, b.st_gid, b.st_mtime_ns, b.st_size), name
            entries += 1
    assert n == entries + 1


# ── newuidmap / newgidmap for a delegated service user ──────────────────────────────────────
@pytest.fixture
def service_user():
    """A throwaway system user with a registered range in the real /etc/subuid, /etc/subgid;
    both are gone afterwards."""
    import pwd

    name = f"jltest{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        pw = pwd.getpwnam(name)
        start, gstart, added = subids.register(name, pw.pw_uid)
        try:
            yield name, pw.pw_uid, pw.pw_gid, start, gstart
        finally:
            if added:
                subids.unregister(name, start, gstart)
    finally:
        subprocess.run(["userdel", name], check=True)
    for f in ("/etc/subuid", "/etc/subgid"):
        assert name not in open(f).read()


def as_user(uid: int, gid: int, *argv: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                             *argv], stdin=subprocess.DEVNULL, **kw)


@pytest.fixture
def userns_process(service_user):
    """A sleeping process of the service user in its own, still unmapped user namespace."""
    _, uid, gid, *_ = service_user
    p = as_user(uid, gid, "unshare", "--user", "sleep", "60")
    try:
        mine = os.readlink("/proc/self/ns/user")
        for _ in range(500):
            try:
                with open(f"/proc/{p.pid}/comm") as f:
                    if f.read().strip() == "sleep" and \
                            os.readlink(f"/proc/{p.pid}/ns/user") != mine:
                        break
            except OSError:
                pass
            time.sleep(0.01)
        else:
            pytest.fail("unshare --user did not start")
        yield p.pid
    finally:
        p.kill()
        p.wait()


def run_newidmap(uid: int, gid: int, *args: int) -> subprocess.CompletedProcess:
    """newidmap() run as the user: a fork of this process drops to the user's ids (no new
    interpreter, which could not read a checkout under /root) and reports on a pipe."""
    from jailer.core.errors import JailerError
    from jailer.engine.subids import newidmap

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            os.chdir("/")
            try:
                newidmap(*args)
            except JailerError as e:
                os.write(w, str(e).encode() + b"\n")
                code = 3
        except BaseException as e:  # noqa: BLE001
            os.write(w, f"{type(e).__name__}: {e}\n".encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return subprocess.CompletedProcess([], os.waitstatus_to_exitcode(status), out, "")


def test_newidmap_maps_the_users_range(service_user, userns_process):
    _, uid, gid, start, gstart = service_user
    r = run_newidmap(uid, gid, userns_process, start, gstart)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(f"/proc/{userns_process}/uid_map") as f:
        assert f.read().split() == ["0", str(start), "65536"]
    with open(f"/proc/{userns_process}/gid_map") as f:
        assert f.read().split() == ["0", str(gstart), "65536"]


def test_newidmap_outside_the_users_range_says_why(service_user, userns_process):
    name, uid, gid, start, gstart = service_user
    r = run_newidmap(uid, gid, userns_process, start + 65536, gstart)
    assert r.returncode == 3, r.stdout + r.stderr
    line = r.stdout.strip()
    assert "\n" not in line
    assert line.startswith(f"user namespace: newuidmap {userns_process} 0 {start + 65536} "
                           "65536 failed: newuidmap: ")
    assert f"is {name}:{start + 65536}:65536 in /etc/subuid" in line
    with open(f"/proc/{userns_process}/uid_map") as f:
        assert f.read() == ""
