"""Facts about the machine recorded with the results, and the private mount namespace in which
crun accepts this hybrid-cgroup host (the host's own mounts are never touched)."""

from __future__ import annotations

import os
import platform
from datetime import datetime

UNIFIED = "/sys/fs/cgroup/unified"


def fstype(path: str, mounts: str = "/proc/self/mounts") -> str | None:
    """Filesystem type mounted at ``path`` (the topmost mount), or None."""
    with open(mounts) as f:
        kinds = [fields[2] for fields in map(str.split, f) if len(fields) > 2
                 and fields[1] == path]
    return kinds[-1] if kinds else None


def cgroup_mode() -> str:
    """hybrid, v2 or v1, as seen before any unmounting."""
    if fstype("/sys/fs/cgroup") == "cgroup2":
        return "v2"
    if fstype(UNIFIED) == "cgroup2" and os.path.isdir("/sys/fs/cgroup/memory"):
        return "hybrid"
    return "v1"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def machine() -> dict[str, str | int]:
    """CPU, kernel, cgroup mode, memory, load and date: what a reader needs to compare runs."""
    return {"cpu": cpu_model(), "cpus": os.cpu_count() or 0, "kernel": os.uname().release,
            "arch": os.uname().machine, "cgroups": cgroup_mode(), "memory_mib": mem_total_mib(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(),
            "date": datetime.now().astimezone().isoformat("T", "seconds")}


def versions(tools: dict[str, list[str]]) -> dict[str, str]:
    """{name: the first line of its version output} of the tools that are installed."""
    import shutil
    import subprocess

    out = {}
    for name, argv in tools.items():
        if not shutil.which(argv[0]):
            continue
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        lines = (r.stdout or r.stderr).strip().splitlines()
        if lines:
            out[name] = lines[0].strip()
    return out


def enter_private_mount_namespace() -> str:
    """Move this process into a new private mount namespace and lazily unmount the hybrid
    host's cgroup2 mount there, so crun (which refuses hybrid cgroups) runs, and every subject
    runs under the same conditions. Returns a note saying what was done.

    The unmount happens only after proving the namespace is new (its id differs from the one
    we started in and from our parent's); the host's mounts are never touched.
    """
    from jailer.kernel import syscalls as S

    if fstype(UNIFIED) != "cgroup2":
        return f"no cgroup2 mount at {UNIFIED}: subjects run in the host's mount namespace"
    outer = {os.readlink("/proc/self/ns/mnt")}  # ours before unshare, and our parent's
    try:
        outer.add(os.readlink(f"/proc/{os.getppid()}/ns/mnt"))
    except OSError:
        pass  # pid 1 of some VMs and containers is unreadable
    sys_ = S.Syscalls()
    sys_.unshare(S.CLONE_NEWNS)
    sys_.mount(None, "/", None, S.MS_REC | S.MS_PRIVATE)
    here = os.readlink("/proc/self/ns/mnt")
    if here in outer:
        raise RuntimeError(f"cannot prove {here} is a private mount namespace; "
                           "refusing to unmount anything")
    sys_.umount2(UNIFIED, S.MNT_DETACH)
    return (f"every subject ran in a private mount namespace with {UNIFIED} lazily unmounted "
            "(crun refuses hybrid cgroups otherwise; the host's mounts were not touched)")
