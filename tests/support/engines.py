"""Helpers for the tests where real engines (podman, containerd's ctr) drive a runtime: the
host's interop tests (tests/integration/interop) and the systemd tier (tests/systemd).

- the runtimes under test (runc, jailer), each behind an argv-logging wrapper named like it;
- the busybox image from jailer's store as a docker archive (podman and ctr load it offline);
- installing the engines (scripts/interop-setup) or skipping with the reason;
- leak checks: our processes by command line, jailer's default data dir, snapshots compared
  once things settle.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JAILER = str(Path(sys.executable).parent / "jailer")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
BINARIES = {"runc": RUNC, "jailer": JAILER}
IMAGE = "localhost/jailer-busybox:latest"
SETUP = REPO / "scripts" / "interop-setup"


# ── tools ────────────────────────────────────────────────────────────────────────────────
def ensure_tools(*tools: str, required: bool = False) -> None:
    """Install what is missing with scripts/interop-setup; skip only if that cannot work
    (fail instead when ``required``: where the tools must be, a skip would hide it)."""
    missing = [t for t in tools if not shutil.which(t)]
    if not missing:
        return
    why = "not root"
    if os.geteuid() == 0:
        r = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=900)
        why = (r.stderr or r.stdout).strip()[-400:] or f"exit {r.returncode}"
        missing = [t for t in tools if not shutil.which(t)]
    if missing:
        msg = f"{', '.join(missing)} not installable here ({SETUP.name}: {why})"
        if required:
            pytest.fail(msg)
        pytest.skip(msg)


def sh(*argv: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, text=True, capture_output=True, timeout=timeout,
                          stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


# ── the runtime under test, behind an argv-logging wrapper ──────────────────────────────
WRAPPER = """#!/bin/bash
# engine tests: log how the engine calls the runtime, then become the runtime
printf '%s\\n' "$(printf '%q ' "$@")" >> {log}
exec {binary} "$@"
"""

# runc's global options that take a value (the verb is the first other word)
GLOBAL_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


@dataclass
class Runtime:
    name: str                # "runc" or "jailer"
    binary: str              # the real runtime
    wrapper: str             # what the engines are given: logs argv, execs binary
    log: Path

    @classmethod
    def make(cls, base: Path, name: str, binary: str, tag: str = "") -> Runtime:
        d = base / f"runtime-{name}{tag}"
        d.mkdir(parents=True, exist_ok=True)
        log = d / "argv.log"
        log.touch()
        # engines decide by basename (podman passes --log-format=json only to runtimes it
        # knows), so the wrapper is named like the real binary
        wrapper = d / Path(binary).name
        wrapper.write_text(WRAPPER.format(log=shlex.quote(str(log)),
                                          binary=shlex.quote(binary)))
        wrapper.chmod(0o755)
        return cls(name, binary, str(wrapper), log)

    def mark(self) -> int:
        return self.log.stat().st_size

    def calls(self, since: int = 0) -> list[list[str]]:
        with open(self.log, "rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
        out = []
        for line in lines:
            try:
                out.append(shlex.split(line))
            except ValueError:
                out.append([line])
        return out

    @staticmethod
    def verb(argv: list[str]) -> str:
        """The OCI verb of one call (after the global options)."""
        i = 0
        while i < len(argv) and argv[i].startswith("-"):
            i += 2 if argv[i] in GLOBAL_WITH_VALUE else 1
        return argv[i] if i < len(argv) else ""

    def verbs(self, since: int = 0) -> list[str]:
        return [self.verb(argv) for argv in self.calls(since)]

    def print_calls(self, since: int = 0) -> None:
        """The calls since ``since``, for a failing test's captured output."""
        calls = self.calls(since)
        if calls:
            print(f"{self.name} was called {len(calls)} times:")
            for argv in calls:
                print("  ", shlex.join(argv))


# ── the image ──────────────────────────────────────────────────────────────────────────
def docker_archive(data_dir: Path, out_dir: Path, name: str = IMAGE) -> Path:
    """busybox from jailer's store (JAILER_DATA=data_dir) as a docker archive tagged ``name``,
    in ``out_dir``: `podman load -i` and `ctr images import` take it without a registry."""
    rootfs_tar = out_dir / "busybox-rootfs.tar"
    subprocess.run([JAILER, "image", "export", "busybox", "-o", str(rootfs_tar)], check=True,
                   env={**os.environ, "JAILER_DATA": str(data_dir)}, stdout=subprocess.DEVNULL)
    layer = rootfs_tar.read_bytes()
    rootfs_tar.unlink()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "jailer image export busybox"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name],
                            "Layers": ["layer.tar"]}]).encode()
    archive = out_dir / "busybox-docker-archive.tar"
    with tarfile.open(archive, "w") as t:
        for member, data in (("layer.tar", layer), (config_name, config),
                             ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return archive


# ── leak checks ──────────────────────────────────────────────────────────────────────────
def processes(markers: tuple[str, ...], pids: frozenset[int] = frozenset()) -> set[str]:
    """"PID CMDLINE" of the processes whose command line names one of ``markers`` (conmon,
    shims, `podman container cleanup` name the session's dirs) or whose pid is in ``pids``."""
    out = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmdline and (any(m in cmdline for m in markers) or int(pid) in pids):
            out.add(f"{pid} {cmdline[:160]}")
    return out


def jailer_default_data() -> set[str]:
    """Engines do not pass JAILER_DATA on to the runtime (podman gives it a bare environment
    for most calls), so jailer under them keeps its records in its default data dir."""
    out = set()
    for sub in ("containers", "starts"):
        d = f"/var/lib/jailer/{sub}"
        if os.path.isdir(d):
            out |= {f"{d}/{e}" for e in os.listdir(d) if not e.startswith(".")}
    return out


def new_since(before: dict, snapshot: Callable[[], dict], wait: float = 15) -> dict:
    """What ``snapshot()`` shows that ``before`` did not, once things settle (podman's cleanup
    runs after `podman run --rm` has returned; conmon and shims exit a moment after the
    container). Values are sets or lists; "processes" ("PID CMDLINE") compare by pid."""
    deadline = time.monotonic() + wait
    while True:
        after = snapshot()
        found = {}
        for k, old in before.items():
            new = after[k]
            if k == "processes":
                olds = {p.split()[0] for p in old}
                extra = sorted(p for p in new if p.split()[0] not in olds)
            elif isinstance(new, list):
                extra = [m for m in new if m not in old]
            else:
                extra = sorted(set(new) - set(old))
            if extra:
                found[k] = extra
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


# ── what an engine holds ─────────────────────────────────────────────────────────────────
class EngineBase:
    """One engine for a test session: its dir, names for its containers, what it holds."""

    def __init__(self, base: Path, markers: tuple[str, ...]):
        self.base = base
        self.markers = markers          # what our processes have on their command lines
        self._counter = 0

    def unique(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{os.getpid()}-{self._counter}"

    def containers(self) -> set[str]:
        """What the engine still holds (containers, tasks, ...), one line each."""
        return set()

    def remove_all(self) -> None:
        """Force-remove everything the engine holds (after a test that left something)."""


class PodmanState(EngineBase):
    """podman's containers, through ``self(*args)`` (podman with the session's options)."""

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def containers(self) -> set[str]:
        r = self("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}")
        return set(r.stdout.splitlines()) if r.returncode == 0 else {f"podman ps: {r.stderr}"}

    def remove_all(self) -> None:
        self("rm", "--all", "--force", "--time", "0", timeout=120)


class CtrState(EngineBase):
    """containerd's containers, tasks and snapshots, through ``self.ctr(*args)``."""

    def ctr(self, *args: str, **kw) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def containers(self) -> set[str]:
        out = set()
        for what in ("containers", "tasks", "snapshots"):
            lines = self.ctr(what, "ls").stdout.splitlines()[1:]     # after the header
            out |= {f"{what}: {line.split()[0]}" for line in lines if line.strip()}
        return out

    def remove(self, cid: str) -> None:
        """Kill and delete the task and container ``cid`` if they are there."""
        self.ctr("tasks", "kill", "--signal", "SIGKILL", cid)
        self.ctr("tasks", "delete", "--force", cid)
        self.ctr("containers", "delete", cid)

    def remove_all(self) -> None:
        for cid in {*self.ctr("tasks", "ls", "-q").stdout.split(),
                    *self.ctr("containers", "ls", "-q").stdout.split()}:
            self.remove(cid)
