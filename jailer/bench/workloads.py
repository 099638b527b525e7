"""What is measured: each workload is a command of the static workload program (workload.c,
built here with ``cc -static``) or ``/bin/true`` of the rootfs, its unit, and its sizes.

``start`` is timed by the harness (fork to exit of the whole runtime); every other workload
times itself inside, so the runtime's start-up is excluded and only the isolation's cost on
the running program remains. ``density`` drives named jails instead (see ``named``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

BIN = "/bench"  # where the workload program sits inside the benchmark's rootfs
IO_DIR = "/io"  # the directory file I/O runs in, on the root filesystem itself
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workload.c")


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    unit: str
    better: str  # "lower" or "higher"
    mode: str  # the workload program's mode ("" for start and density)
    full: tuple = ()  # the program's size arguments: full run
    quick: tuple = ()  # ... and --quick
    runs: tuple[int, int] = (9, 3)  # timed runs: full, quick
    warmup: tuple[int, int] = (1, 1)
    needs: tuple[str, ...] = (BIN,)  # paths the rootfs must hold
    note: str = ""
    extra: dict = field(default_factory=dict)

    def sizes(self, quick: bool) -> tuple:
        return self.quick if quick else self.full

    def command(self, quick: bool, io_dir: str = IO_DIR,
                target: tuple[str, str] = ("self", "0")) -> list[str]:
        """The command line inside the rootfs (paths as the subject sees them)."""
        if self.name == "start":
            return ["/bin/true"]
        sizes = [str(s) for s in self.sizes(quick)]
        if self.mode in ("fileio", "files"):
            return [BIN, self.mode, io_dir, *sizes]
        if self.mode in ("tcp-stream", "tcp-rr"):
            return [BIN, self.mode, *target, *sizes]
        return [BIN, self.mode, *sizes]

    @property
    def timed_by_harness(self) -> bool:
        return self.name == "start"


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("start", "start-to-exit of /bin/true", "ms", "lower", "", runs=(21, 5),
             warmup=(3, 1), needs=("/bin/true",),
             note="wall time from fork to exit of the whole runtime command"),
    Workload("cpu", "CPU-bound: generate + qsort 4096 ints", "ms", "lower", "cpu",
             full=(300,), quick=(30,), runs=(31, 3),
             note="everyday integer code: branches, indirect calls, loads and stores"),
    Workload("cpu-alu", "CPU-bound: tight ALU loop", "ms", "lower", "alu",
             full=(30_000_000,), quick=(5_000_000,), runs=(31, 3),
             note="an xorshift hash in registers: the best case for a translator"),
    Workload("syscall", "syscall-bound loop (getppid)", "ns/call", "lower", "syscall",
             full=(2_000_000,), quick=(100_000,)),
    Workload("membw", "memory bandwidth (memcpy)", "MB/s", "higher", "membw",
             full=(64, 16), quick=(16, 2)),
    Workload("fileio", "file write + read on the root fs", "MB/s", "higher", "fileio",
             full=(256,), quick=(8,),
             note="1 MiB blocks through the page cache, no fsync: the file system's and the "
                  "overlay's cost, not the disk's"),
    Workload("files", "small files on the root fs", "us/file", "lower", "files",
             full=(5000,), quick=(300,),
             note="create, write 4 KiB, close, stat, unlink"),
    Workload("net-stream", "TCP throughput", "MB/s", "higher", "tcp-stream",
             full=(1024,), quick=(32,),
             note="the namespace's own loopback; container-bridge: host -> jail over veth"),
    Workload("net-rr", "TCP round trip (1 byte)", "us", "lower", "tcp-rr",
             full=(5000,), quick=(300,),
             note="the namespace's own loopback; container-bridge: host -> jail over veth"),
    Workload("density", "idle named jails: start rate and memory", "", "", "",
             full=(100,), quick=(3,), runs=(1, 1), warmup=(0, 0),
             note="jailer create + start of N idle jails, then stop and rm"),
)}


class BuildError(Exception):
    pass


def build_program(out: str) -> None:
    """Compile workload.c into a static binary at ``out`` (raises BuildError)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise BuildError("no C compiler (cc) found: install gcc and libc6-dev")
    r = subprocess.run([cc, "-static", "-O2", "-o", out, SOURCE], capture_output=True,
                       text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"cc -static {SOURCE} failed: {last} (a static libc is needed: "
                         "install libc6-dev)")


def resolve_in_root(root: str, path: str) -> str | None:
    """The host path of ``path`` inside ``root``, following symlinks as the container would
    (absolute targets stay inside the root), or None if it does not exist."""
    parts = [p for p in path.split("/") if p]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not os.path.lexists(candidate):
            return None
        current = candidate
    return current


def make_root(image_root: str, dest: str, program: str) -> None:
    """The benchmark's rootfs: a copy of the image with the workload program at /bench and an
    empty /io, so every subject (and the host) runs the very same files."""
    r = subprocess.run(["cp", "-a", "--reflink=auto", f"{image_root}/.", dest],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"copying {image_root}: {r.stderr.strip()}")
    shutil.copy(program, os.path.join(dest, BIN.lstrip("/")))
    os.chmod(os.path.join(dest, BIN.lstrip("/")), 0o755)
    io = os.path.join(dest, IO_DIR.lstrip("/"))
    os.makedirs(io, exist_ok=True)
    os.chmod(io, 0o777)


def missing_paths(image_root: str, wanted: list[Workload]) -> dict[str, list[str]]:
    """{workload: [paths the image lacks]} for workloads that need files of the image."""
    out = {}
    for w in wanted:
        lacking = [p for p in w.needs if p != BIN and resolve_in_root(image_root, p) is None]
        if lacking:
            out[w.name] = lacking
    return out
