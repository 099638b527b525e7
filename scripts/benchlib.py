"""Shared helpers of the benchmark scripts: machine facts, and a private mount namespace in
which crun accepts this hybrid-cgroup host (the host's own mounts are never touched)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from typing import NoReturn

GUARD = "JAILER_BENCH_OUTER_MNTNS"  # holds the outer mount namespace id once re-executed
UNIFIED = "/sys/fs/cgroup/unified"
PROG = os.path.basename(sys.argv[0])


def die(msg: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit."""
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def fstype(path: str) -> str | None:
    """Filesystem type mounted at path (the topmost mount), or None."""
    kinds = [f[2] for f in map(str.split, open("/proc/self/mounts")) if f[1] == path]
    return kinds[-1] if kinds else None


def cgroup_mode() -> str:
    """hybrid, v2 or v1, as seen before any unmounting."""
    if fstype("/sys/fs/cgroup") == "cgroup2":
        return "v2"
    if fstype(UNIFIED) == "cgroup2" and os.path.isdir("/sys/fs/cgroup/memory"):
        return "hybrid"
    return "v1"


def machine() -> dict[str, str]:
    """CPU model, kernel, cgroup mode and date."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown")
    return {"cpu": f"{cpu} ({os.cpu_count()} cpus)", "kernel": os.uname().release,
            "cgroups": cgroup_mode(), "date": datetime.now().astimezone().isoformat("T", "seconds")}


def enter_private_namespace(argv: list[str]) -> None:
    """Re-execute this script under unshare(1) with a private mount namespace (once)."""
    if GUARD in os.environ:
        return
    env = {**os.environ, GUARD: os.readlink("/proc/self/ns/mnt")}
    script = os.path.abspath(sys.argv[0])
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable, script, *argv]
    os.execvpe("unshare", cmd, env)


def drop_unified() -> str:
    """Lazily unmount the hybrid cgroup2 mount, only after proving this is a new namespace."""
    if fstype(UNIFIED) != "cgroup2":
        return f"no cgroup2 mount at {UNIFIED}, nothing unmounted"
    here = os.readlink("/proc/self/ns/mnt")
    outer = [os.environ[GUARD]]  # recorded before unshare(1), plus at least one live witness:
    for pid in (1, os.getppid()):  # unshare exec'd us, so our parent is still outside
        try:
            outer.append(os.readlink(f"/proc/{pid}/ns/mnt"))
        except OSError:
            pass  # pid 1 is unreadable inside some containers
    if here in outer or len(outer) < 2:
        die(f"cannot prove {here} is a private mount namespace; refusing to unmount anything")
    subprocess.run(["umount", "-l", UNIFIED], check=True)
    return f"ran in a private mount namespace with {UNIFIED} lazily unmounted (host untouched)"


