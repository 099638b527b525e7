"""Filters loaded for real: a forked child sets no_new_privs, loads a policy, tries syscalls
through libc's syscall() and reports the errno values through a pipe.

Everything a filter should stop but the child (root) could otherwise do to the host runs in
the child's own mount and network namespaces, so a broken filter cannot leak.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import socket

import pytest

from jailer.kernel import syscalls as sc
from jailer.policy import seccomp as S

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.uname().machine != "x86_64",
                                 reason="syscall numbers are x86_64's")]

SYS = {"getpid": 39, "socket": 41, "clone": 56, "getuid": 102, "getppid": 110,
       "getpriority": 140, "mknod": 133, "mount": 165, "umount2": 166, "gettid": 186,
       "init_module": 175, "mknodat": 259, "unshare": 272, "clone3": 435}
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
I386_GETPID = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"  # mov eax, 20; int 0x80; ret

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def call(nr: int, *args) -> int:
    """0 on success, else errno. Unsigned longs, so high bits reach the kernel as given."""
    ctypes.set_errno(0)
    conv = [ctypes.c_ulong(a) if isinstance(a, int) else a for a in args]
    ret = libc.syscall(ctypes.c_long(nr), *conv)
    if ret == 0 and nr in (SYS["clone"],):
        os._exit(0)  # a clone the filter failed to stop: the copy must not run the test
    if ret > 0 and nr == SYS["clone"]:
        os.waitpid(ret, 0)
    return ctypes.get_errno() if ret < 0 else 0


def in_child(body, *, bpf: bytes, flags: int = 0, private: bool = True) -> dict:
    """Run ``body()`` in a forked child under ``bpf``; return what it reported."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            real = sc.Syscalls()
            if private:  # own mount + net namespaces: nothing here can touch the host
                real.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWNET)
                real.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            real.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            prepared = body(None)  # setup before the filter (files, sockets, code pages)
            S.load(bpf, flags)
            out = body(prepared)
        except BaseException as e:  # noqa: BLE001
            out = {"error": f"{type(e).__name__}: {e}"}
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died: status {status:#x}"
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result


def ifreq(name: bytes) -> ctypes.Array:
    buf = ctypes.create_string_buffer(40)
    buf.raw = name.ljust(40, b"\0")
    return buf


def i386_code() -> mmap.mmap:
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(I386_GETPID)
    return page


def run_code(page: mmap.mmap) -> int:
    addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return ctypes.CFUNCTYPE(ctypes.c_long)(addr)()


def i386_works() -> bool:
    """Does int 0x80 reach the kernel here (IA32 emulation on)? Probed without a filter."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if run_code(i386_code()) == os.getpid() else 1)
    return os.waitpid(pid, 0)[1] == 0


@pytest.fixture
def cache(tmp_path) -> str:
    return str(tmp_path / "cache")


def probes(tmp: str):
    """The jail-policy probe: returns errno (0 = success) per attempted call."""
    t = tmp.encode()

    def body(prep):
        if prep is None:
            return {"sock": socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach(),
                    "page": i386_code()}
        sock, i386 = prep["sock"], run_code(prep["page"])
        return {
            "mount": call(SYS["mount"], b"none", t + b"/m", b"tmpfs", 0, None),
            "umount2": call(SYS["umount2"], t + b"/m", 0),
            "mknod_chr": call(SYS["mknod"], t + b"/chr", 0o020600, os.makedev(1, 3)),
            "mknodat_blk": call(SYS["mknodat"], -100 & (2**64 - 1), t + b"/blk", 0o060600,
                                os.makedev(7, 0)),
            "mknod_fifo": call(SYS["mknod"], t + b"/fifo", 0o010600, 0),
            "unshare_uts": call(SYS["unshare"], sc.CLONE_NEWUTS),
            "clone3": call(SYS["clone3"], None, 0),
            "siocsifflags": call(16, sock, SIOCSIFFLAGS, ifreq(b"lo")),
            "siocsifflags_hi": call(16, sock, 0xFFFFFFFF00000000 | SIOCSIFFLAGS, ifreq(b"lo")),
            "siocgifflags": call(16, sock, SIOCGIFFLAGS, ifreq(b"lo")),
            "init_module": call(SYS["init_module"], None, 0, b""),
            "getpid": call(SYS["getpid"]),
            "unknown_1000": call(1000),
            "x32_getpid": call(0x40000000 | SYS["getpid"]),
            "i386_getpid": -i386 if i386 < 0 else 0,
            # last: a new user namespace takes the capabilities the probes above need
            "clone_user": call(SYS["clone"], sc.CLONE_NEWUSER | 17, 0, 0, 0, 0),
            "unshare_user": call(SYS["unshare"], sc.CLONE_NEWUSER),
        }
    return body


def test_probes_reach_the_kernel_without_a_filter(tmp_path):
    """The control: with an allow-all filter the same probes succeed (or fail otherwise), so
    the denials below come from the jail policy, not from the kernel or the test."""
    os.mkdir(tmp_path / "m")
    allow_all = S.Policy(default_action="allow", badarch_action="allow")
    got = in_child(probes(str(tmp_path)), bpf=S.compile_bpf(allow_all))
    for name in ("mount", "umount2", "mknod_chr", "mknodat_blk", "mknod_fifo", "clone_user",
                 "unshare_user", "siocsifflags", "siocsifflags_hi", "getpid"):
        assert got[name] == 0, (name, got[name])
    assert got["clone3"] == errno.EINVAL and got["x32_getpid"] != errno.EPERM
    assert got["init_module"] not in (0, errno.EPERM)


def test_jail_policy_denies_what_it_should(tmp_path, cache):
    os.mkdir(tmp_path / "m")
    policy = S.jail_policy()
    bpf = S.cached_bpf(policy, cache)
    got = in_child(probes(str(tmp_path)), bpf=bpf, flags=policy.flags)
    EPERM, ENOSYS = errno.EPERM, errno.ENOSYS
    assert got["mount"] == EPERM and got["umount2"] == EPERM
    assert got["mknod_chr"] == EPERM and got["mknodat_blk"] == EPERM
    assert got["mknod_fifo"] == 0 and (tmp_path / "fifo").exists()
    assert not (tmp_path / "chr").exists() and not (tmp_path / "blk").exists()
    assert got["unshare_user"] == EPERM and got["unshare_uts"] == 0
    assert got["clone_user"] == EPERM
    assert got["clone3"] == ENOSYS
    assert got["siocsifflags"] == EPERM and got["siocsifflags_hi"] == EPERM
    assert got["siocgifflags"] == 0
    assert got["init_module"] == EPERM
    assert got["getpid"] == 0
    assert got["unknown_1000"] == ENOSYS
    assert got["x32_getpid"] == EPERM
    if i386_works():
        assert got["i386_getpid"] == EPERM


def test_syscall_newer_than_libseccomp_gets_enosys(tmp_path, cache):
    from jailer.policy import _seccomp

    lib = _seccomp.lib
    if lib.seccomp_syscall_resolve_name(b"mseal") != lib.__NR_SCMP_ERROR:
        pytest.skip("this libseccomp knows mseal")

    def body(prep):
        if prep is None:
            return {"page": mmap.mmap(-1, 4096)}
        addr = ctypes.addressof(ctypes.c_char.from_buffer(prep["page"]))
        return {"mseal": call(462, addr, 4096, 0)}

    assert in_child(body, bpf=S.cached_bpf(S.jail_policy(), cache))["mseal"] == errno.ENOSYS


@pytest.mark.parametrize("words,lifted", [
    ({"mount"}, ("mount", "umount2")),
    ({"mknod"}, ("mknod_chr", "mknodat_blk")),
    ({"netconfig"}, ("siocsifflags", "siocsifflags_hi")),
    ({"nesting"}, ("unshare_user", "clone_user")),
])
def test_allow_words_lift_their_denials(tmp_path, cache, words, lifted):
    os.mkdir(tmp_path / "m")
    policy = S.jail_policy(frozenset(words))
    got = in_child(probes(str(tmp_path)), bpf=S.cached_bpf(policy, cache))
    for name in lifted:
        assert got[name] == 0, (name, got[name])
    if "nesting" in words:
        assert got["clone3"] == errno.EINVAL  # reaches the kernel, which wants clone_args
    assert got["init_module"] == errno.EPERM and got["x32_getpid"] == errno.EPERM


def test_log_mode_allows_and_logs(tmp_path, cache):
    os.mkdir(tmp_path / "m")
    got = in_child(probes(str(tmp_path)), bpf=S.cached_bpf(S.jail_policy(log=True), cache))
    assert got["mount"] == 0 and got["umount2"] == 0
    assert got["unshare_user"] == 0 and got["siocsifflags"] == 0


def test_docker_profile_allowlist(tmp_path, cache):
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [
            {"names": ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap",
                       "madvise", "futex", "rt_sigprocmask", "rt_sigaction", "rt_sigreturn",
                       "sigaltstack", "close", "getpid", "not_a_syscall_yet"],
             "action": "SCMP_ACT_ALLOW"},
            {"name": "getuid", "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
            {"names": ["getpriority"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
        ],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    policy = S.load_profile(str(path))

    def body(prep):
        if prep is None:
            return {}
        return {"getpid": call(SYS["getpid"]), "getuid": call(SYS["getuid"]),
                "prio_process": call(SYS["getpriority"], 0, 0),
                "prio_pgrp": call(SYS["getpriority"], 1, 0),
                "getppid": call(SYS["getppid"]), "gettid": call(SYS["gettid"]),
                "unknown": call(1000), "socket": call(SYS["socket"], 2, 1, 0)}

    got = in_child(body, bpf=S.cached_bpf(policy, cache), flags=policy.flags)
    assert got == {"getpid": 0, "getuid": errno.EACCES, "prio_process": 0,
                   "prio_pgrp": errno.EPERM, "getppid": errno.EPERM, "gettid": errno.EPERM,
                   "unknown": errno.EPERM, "socket": errno.EPERM}


def test_load_failure_names_the_call():
    def body(prep):
        if prep is None:
            return {}
        try:
            S.load(b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0x80)  # ALLOW, but an unknown flag
        except OSError as e:
            return {"errno": e.errno, "msg": e.strerror}
        return {"errno": 0}

    got = in_child(body, bpf=S.compile_bpf(S.Policy(default_action="allow")), private=False)
    assert got["errno"] == errno.EINVAL
    assert got["msg"].startswith("seccomp(SECCOMP_SET_MODE_FILTER, 0x80, 1 instructions)")
