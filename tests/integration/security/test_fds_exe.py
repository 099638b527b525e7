"""What the runtime could leak into the container: open file descriptors (only 0-2 may
arrive, whatever the caller had open), its working directory and root, and its own
executable -- the CVE-2019-5736 path of overwriting the runtime through /proc/<pid>/exe, with
and without --init (where pid 1 is the host's init binary, bound read-only). The sha256 of
every runtime binary on the host is compared before and after.
"""

from __future__ import annotations

import errno as E
import os
import re

import pytest

from .helpers import (
    ATTACK,
    POLICY_LEVELS,
    assert_denied,
    runtime_binaries,
    sha256s,
)

pytestmark = pytest.mark.root

EXE_WRITE_DENIED = {E.ETXTBSY, E.EACCES, E.EROFS, E.EPERM}


@pytest.fixture
def extra_fds(tmp_path):
    """Inheritable fds the caller of jailer holds: a secret file and a pipe."""
    secret = tmp_path / "secret-host-file"
    secret.write_text("host secret\n")
    fds = [os.open(secret, os.O_RDONLY), *os.pipe()]
    for fd in fds:
        os.set_inheritable(fd, True)
    yield tuple(fds)
    for fd in fds:
        os.close(fd)


@pytest.mark.parametrize("level", ["chroot", *POLICY_LEVELS])
def test_only_stdio_reaches_the_workload(attack, level, extra_fds):
    """The attack binary replaces the shell (exec: it becomes pid 1 in a jail) and lists the
    fds it inherited -- exactly what the runtime handed over."""
    proc = "mount -t proc proc /proc\n" if level == "chroot" else ""  # private mount ns
    out = attack(level, proc + "try cwd readlink /proc/1/cwd\ntry root readlink /proc/1/root\n"
                 f"try self_cwd readlink /proc/self/cwd\nexec {ATTACK} fds",
                 pass_fds=extra_fds)
    listing = re.search(r"^fds=(\S*)", out.stdout, re.M)
    assert listing, out.stdout
    fds = [entry.split(":", 1) for entry in listing.group(1).split(",") if entry]
    assert sorted(int(fd) for fd, _ in fds) == [0, 1, 2], fds
    leaked = {f"pipe:[{os.fstat(fd).st_ino}]" for fd in extra_fds[1:]}
    assert not any("secret" in target or target in leaked for _, target in fds), fds
    if level != "chroot":  # at chroot level pid 1 is the host's init
        assert (out["cwd"].text, out["root"].text) == ("/", "/")
    assert out["self_cwd"].text == "/"


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("init", [False, True], ids=["shell-pid1", "init-pid1"])
def test_runtime_cannot_be_overwritten_through_proc_exe(attack, level, init, data_dir):
    opts = ("--init",) if init else ()
    if init:  # build jailer-init first, so the hashes below cover it
        attack(level, "true", *opts)
    before = sha256s(runtime_binaries(data_dir))
    out = attack(level, f"""
        try exe1 {ATTACK} openw /proc/1/exe
        try exe_self {ATTACK} openw /proc/self/exe
        try exe_parent sh -c '{ATTACK} openw /proc/$PPID/exe'
        try exe_trunc sh -c ': > /proc/1/exe'
        try links sh -c 'for p in /proc/[0-9]*; do readlink $p/exe; done'
    """, *opts)
    for label in ("exe1", "exe_self", "exe_parent", "exe_trunc"):
        assert_denied(out, label, EXE_WRITE_DENIED)
    links = set(out["links"].text.split())
    allowed = {"/bin/busybox", ATTACK, "/dev/init"}
    assert links <= allowed, f"executables from outside the container: {links - allowed}"
    assert ("/dev/init" in links) == init
    assert sha256s(runtime_binaries(data_dir)) == before
