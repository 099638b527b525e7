"""The one place jailer talks to the kernel for namespace, mount and process-control calls.

``Syscalls`` wraps the compiled cffi shims; every failure raises ``OSError`` whose message
names the call and its arguments (``mount("proc", "/r/proc", "proc", 0xe): ...``). ``FakeSyscalls``
records the calls instead, so plans and launch sequences are unit-testable without root.
"""

from __future__ import annotations

import os

# clone/unshare flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount flags (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_RELATIME = 0x200000
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# open_tree / move_mount / openat2
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
RESOLVE_NO_MAGICLINKS = 0x02

PROC_SUPER_MAGIC = 0x9FA0  # linux/magic.h
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38


# mount_setattr attributes
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
MS_SHARED = 0x100000
MS_UNBINDABLE = 0x20000
MS_NOSYMFOLLOW = 0x100
MOUNT_ATTR_IDMAP = 0x100000


def _fmt(args: tuple) -> str:
    return ", ".join(hex(a) if isinstance(a, int) and a > 9 else repr(a) for a in args)


def final_stage_names(lib) -> dict[int, str]:
    """The user-facing name of each step of ``jl_final_exec``, by its ``JL_STAGE_*`` number
    (defined in native.h, read from the compiled module ``lib``)."""
    return {lib.JL_STAGE_CGROUP: "join cgroup", lib.JL_STAGE_CGROUPNS: "cgroup namespace",
            lib.JL_STAGE_BOUNDING: "capability bounding set", lib.JL_STAGE_USER: "user",
            lib.JL_STAGE_CAPS: "capabilities", lib.JL_STAGE_NNP: "no_new_privs",
            lib.JL_STAGE_CLOSE_FDS: "close fds", lib.JL_STAGE_SECCOMP: "seccomp",
            lib.JL_STAGE_EXEC: "exec"}


class Syscalls:
    """Real syscalls through the compiled ``jailer.kernel._native`` module."""

    def __init__(self) -> None:
        from jailer.kernel import _native

        self._ffi = _native.ffi
        self._lib = _native.lib

    def _check(self, ret: int, name: str, *args: object, path: str | None = None) -> int:
        if ret < 0:
            err = self._ffi.errno
            raise OSError(err, f"{name}({_fmt(args)}): {os.strerror(err)}", path)
        return ret

    @staticmethod
    def _b(s: str | None):
        return None if s is None else s.encode()

    def unshare(self, flags: int) -> None:
        self._check(self._lib.jl_unshare(flags), "unshare", flags)

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._check(self._lib.jl_setns(fd, nstype), "setns", fd, nstype)

    def mount(self, src: str | None, dst: str, fstype: str | None = None, flags: int = 0,
              data: str | None = None) -> None:
        b = self._b
        ret = self._lib.jl_mount(b(src) or self._ffi.NULL, dst.encode(),
                                 b(fstype) or self._ffi.NULL, flags, b(data) or self._ffi.NULL)
        self._check(ret, "mount", src, dst, fstype, flags, path=dst)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._check(self._lib.jl_umount2(target.encode(), flags), "umount2", target, flags,
                    path=target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        ret = self._lib.jl_pivot_root(new_root.encode(), put_old.encode())
        self._check(ret, "pivot_root", new_root, put_old, path=new_root)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._lib.jl_sethostname(raw, len(raw)), "sethostname", name)

    def open_tree(self, path: str, flags: int, dfd: int = AT_FDCWD) -> int:
        if not path:
            flags |= AT_EMPTY_PATH
        return self._check(self._lib.jl_open_tree(dfd, path.encode(), flags), "open_tree",
                           path or dfd, flags, path=path)

    def move_mount(self, from_fd: int, to_path: str, to_dfd: int = AT_FDCWD) -> None:
        """Attach detached tree ``from_fd`` at ``to_path`` (or on ``to_dfd`` if path is "")."""
        flags = MOVE_MOUNT_F_EMPTY_PATH | (MOVE_MOUNT_T_EMPTY_PATH if not to_path else 0)
        ret = self._lib.jl_move_mount(from_fd, b"", to_dfd, to_path.encode(), flags)
        self._check(ret, "move_mount", from_fd, to_path or to_dfd, path=to_path)

    def mount_setattr(self, fd: int, attr_set: int, attr_clr: int = 0, userns_fd: int = -1,
                      recursive: bool = True) -> None:
        """Change attributes of the (detached or attached) mount tree ``fd``."""
        ret = self._lib.jl_mount_setattr(fd, attr_set, attr_clr, userns_fd, int(recursive))
        self._check(ret, "mount_setattr", fd, attr_set, userns_fd)

    def openat2(self, dfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        for _ in range(64):  # EAGAIN: a rename raced the lookup (RESOLVE_IN_ROOT); retry
            ret = self._lib.jl_openat2(dfd, path.encode(), flags, mode, resolve)
            if ret >= 0 or self._ffi.errno != 11:
                break
        return self._check(ret, "openat2", dfd, path, flags, resolve, path=path)

    def fstype(self, fd: int) -> int:
        """The filesystem type (statfs f_type, a *_SUPER_MAGIC) that ``fd`` lies on."""
        return self._check(self._lib.jl_fstype(fd), "fstatfs", fd)

    def prctl(self, option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
        return self._check(self._lib.jl_prctl(option, a2, a3, a4, a5), "prctl", option, a2)

    def child_subreaper(self) -> bool:
        """Is this process a child subreaper (PR_GET_CHILD_SUBREAPER)?"""
        flag = self._ffi.new("int *")
        self.prctl(PR_GET_CHILD_SUBREAPER, int(self._ffi.cast("uintptr_t", flag)))
        return bool(flag[0])

    def loopback_up(self) -> None:
        self._check(self._lib.jl_loopback_up(), "ioctl(SIOCSIFFLAGS)", "lo")

    def setgroups_empty(self) -> None:
        self._check(self._lib.jl_setgroups0(), "setgroups", 0)

    def setfsid(self, uid: int, gid: int) -> None:
        """Set the filesystem uid/gid: new files get these owners; capabilities stay."""
        self._lib.jl_setfsid(uid, gid)

    def personality(self, persona: int) -> None:
        self._check(self._lib.jl_personality(persona), "personality", persona)

    def ioprio_set(self, ioprio: int) -> None:
        """This process's I/O priority (IOPRIO_WHO_PROCESS, itself)."""
        self._check(self._lib.jl_ioprio_set(1, 0, ioprio), "ioprio_set", 1, 0, ioprio)

    def sched_setattr(self, policy: int, flags: int, nice: int, priority: int, runtime: int,
                      deadline: int, period: int) -> None:
        """This process's scheduling policy and its parameters (sched_setattr(2))."""
        self._check(self._lib.jl_sched_setattr(policy, flags, nice, priority, runtime,
                                               deadline, period),
                    "sched_setattr", policy, flags, nice, priority, runtime, deadline, period)

    def final_exec(self, path: str | int, argv: list[str], envp: list[str], *,
                   cgroup_fds: list[int] = (), cgroupns: bool = False,
                   caps: int | None = None, inheritable: int = 0, ambient: int = 0,
                   uid: int = 0, gid: int = 0, bpf: bytes = b"", bpf_flags: int = 0,
                   effective: int | None = None, permitted: int | None = None,
                   groups: list[int] = (), nnp: bool = True) -> None:
        """The last steps, in C (no Python runs inside the container's cgroup): join the
        cgroup, unshare a cgroup namespace, bounding set and capabilities (``caps`` is a mask,
        None leaves them; ``effective``/``permitted`` masks override what is derived from it),
        user (``groups``: supplementary gids), no_new_privs (unless ``nnp`` is False), close
        fds >= 3 on exec, seccomp, execve.
        ``path`` may be an open fd (execveat). Only returns by raising ``OSError`` with the
        failed step as its ``filename``."""
        ffi = self._ffi
        # every buffer is held in a local: cffi frees what nothing references
        strings = [ffi.new("char[]", a.encode()) for a in [*argv, *envp]]
        c_argv = ffi.new("char *[]", [*strings[:len(argv)], ffi.NULL])
        c_envp = ffi.new("char *[]", [*strings[len(argv):], ffi.NULL])
        fds = ffi.new("int[]", list(cgroup_fds) or [0])
        c_bpf = ffi.from_buffer(bpf)
        c_path = ffi.new("char[]", path.encode()) if isinstance(path, str) else ffi.NULL
        c_groups = ffi.new("unsigned int[]", list(groups) or [0])
        sets = effective is not None
        f = ffi.new("struct jl_final *", {
            "cg_fds": fds, "n_cg": len(cgroup_fds), "cgroupns": int(cgroupns),
            "caps": int(caps is not None), "keep": caps or 0, "inh": inheritable,
            "amb": ambient, "sets": int(sets), "eff": effective or 0,
            "prm": (permitted if permitted is not None else effective) or 0,
            "groups": c_groups, "n_groups": len(groups), "nnp": int(nnp),
            "uid": uid, "gid": gid, "bpf": c_bpf, "bpf_len": len(bpf),
            "bpf_flags": bpf_flags, "path": c_path,
            "exec_fd": path if isinstance(path, int) else -1, "argv": c_argv, "envp": c_envp})
        stage = ffi.new("int *")
        self._lib.jl_final_exec(f, stage)
        err = ffi.errno
        step = final_stage_names(self._lib).get(stage[0], f"final exec step {stage[0]}")
        raise OSError(err, os.strerror(err), step)


class FakeSyscalls:
    """Records every call as ``(name, args)``; where an fd is expected it returns a real one
    (on /dev/null), so code under test can close it as usual.

    ``fail`` maps a call name to an errno to raise once, for testing error paths.
    """

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = dict(fail or {})

    def _rec(self, name: str, *args: object) -> int:
        self.calls.append((name, *args))
        if name in self.fail:
            err = self.fail.pop(name)
            raise OSError(err, f"{name}({_fmt(args)}): {os.strerror(err)}")
        return 0

    def _fd(self, name: str, *args: object) -> int:
        self._rec(name, *args)
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)

    def unshare(self, flags):
        self._rec("unshare", flags)

    def setns(self, fd, nstype=0):
        self._rec("setns", fd, nstype)

    def mount(self, src, dst, fstype=None, flags=0, data=None):
        self._rec("mount", src, dst, fstype, flags, data)

    def umount2(self, target, flags=0):
        self._rec("umount2", target, flags)

    def pivot_root(self, new_root, put_old):
        self._rec("pivot_root", new_root, put_old)

    def sethostname(self, name):
        self._rec("sethostname", name)

    def open_tree(self, path, flags, dfd=AT_FDCWD):
        return self._fd("open_tree", path, flags)

    def move_mount(self, from_fd, to_path, to_dfd=AT_FDCWD):
        self._rec("move_mount", from_fd, to_path)

    def mount_setattr(self, fd, attr_set, attr_clr=0, userns_fd=-1, recursive=True):
        self._rec("mount_setattr", fd, attr_set, attr_clr, userns_fd, recursive)

    def openat2(self, dfd, path, flags, resolve, mode=0):
        return self._fd("openat2", dfd, path, flags, resolve)

    def fstype(self, fd):
        self._rec("fstype", fd)
        return PROC_SUPER_MAGIC

    def prctl(self, option, a2=0, a3=0, a4=0, a5=0):
        return self._rec("prctl", option, a2)

    def child_subreaper(self):
        self._rec("child_subreaper")
        return False

    def loopback_up(self):
        self._rec("loopback_up")

    def setgroups_empty(self):
        self._rec("setgroups_empty")

    def setfsid(self, uid, gid):
        self._rec("setfsid", uid, gid)

    def personality(self, persona):
        self._rec("personality", persona)

    def ioprio_set(self, ioprio):
        self._rec("ioprio_set", ioprio)

    def sched_setattr(self, *args):
        self._rec("sched_setattr", *args)

    def final_exec(self, path, argv, envp, **kw):
        self._rec("final_exec", path, argv, envp, kw)
        raise OSError(0, "final_exec (fake) does not exec", path)
