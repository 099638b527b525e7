"""What runs the workloads: the host, jailer's levels and ablations, the peers (runc, crun,
bubblewrap, chroot(8)) and emulation (qemu-user), all on the same rootfs.

Each subject turns a command line inside the rootfs into the host command that runs it
(``command``), says which workloads it takes part in, and why it cannot run here (``missing``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from jailer.bench.workloads import IO_DIR, resolve_in_root

DOCKER_PROFILE = "/usr/share/containers/seccomp.json"
DOCKER_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

LOOPS = frozenset({"cpu", "cpu-alu", "syscall", "membw", "fileio", "files", "net-stream", "net-rr"})
ALL = LOOPS | {"start"}
NET = frozenset({"net-stream", "net-rr"})


@dataclass
class Context:
    """What subjects share during one benchmark: paths, environment, tools, options."""

    top: str  # the private working directory (removed at the end)
    root: str  # the benchmark's rootfs (a copy of the image + /bench + /io)
    env: dict  # environment of every command: private JAILER_* dirs, bridge, nft table
    quick: bool = False
    profile: str = DOCKER_PROFILE
    jailer: list[str] = field(default_factory=list)  # argv prefix running this jailer
    python: list[str] = field(default_factory=list)  # argv prefix of the ablation helper
    bundles: dict = field(default_factory=dict)  # (runtime, seccomp, cmd) -> bundle dir
    server: dict = field(default_factory=dict)  # the bridged server jail: name, ip, port
    notes: list = field(default_factory=list)  # what subjects want the report to say
    lock: object = None  # holds this run's network slot (see cli.claim_slot)


@dataclass
class Cmd:
    argv: list[str]
    executable: str | None = None  # when argv[0] is an applet name (busybox)
    cleanup: object = None  # callable run after each run


class Subject:
    name = ""
    kind = ""  # host, jailer, ablation, peer, emulation
    title = ""
    workloads: frozenset = ALL
    outside = False  # runs on the host's file system (paths are under ctx.root)

    def missing(self, ctx: Context) -> str | None:
        """Why this subject cannot run here (a note), or None."""
        return None

    def io_dir(self, ctx: Context) -> str:
        return ctx.root + IO_DIR if self.outside else IO_DIR

    def target(self, ctx: Context) -> tuple[str, str]:
        """Where the network client connects: its own loopback, by default."""
        return ("self", "0")

    def setup(self, ctx: Context, workload: str) -> None:
        """Before the runs of one workload."""

    def teardown(self, ctx: Context) -> None:
        """After the runs of one workload (also when they failed)."""

    def recover(self, ctx: Context) -> bool:
        """After a failed run: repair what broke it from outside; True to run it again."""
        return False

    def command(self, ctx: Context, cmd: list[str], run: int) -> Cmd:
        raise NotImplementedError


def host_command(root: str, cmd: list[str]) -> tuple[str, str | None, list[str]]:
    """(host path, argv0 or None, args) of a command of the rootfs run from outside."""
    path = resolve_in_root(root, cmd[0])
    if path is None:
        raise FileNotFoundError(f"{cmd[0]} is not in the rootfs {root}")
    renamed = os.path.basename(path) != os.path.basename(cmd[0])
    return path, os.path.basename(cmd[0]) if renamed else None, cmd[1:]


class Host(Subject):
    name, kind, title = "host", "host", "no isolation: the rootfs's program run directly"
    outside = True

    def command(self, ctx, cmd, run):
        path, argv0, args = host_command(ctx.root, cmd)
        return Cmd([argv0 or path, *args], executable=path if argv0 else None)


class Jailer(Subject):
    kind = "jailer"

    def __init__(self, name: str, level: str, title: str, extra: tuple = (),
                 workloads: frozenset = ALL, needs_profile: bool = False) -> None:
        self.name, self.level, self.title = name, level, title
        self.extra, self.workloads, self.needs_profile = list(extra), workloads, needs_profile

    def missing(self, ctx):
        if self.needs_profile and not os.path.exists(ctx.profile):
            return (f"{ctx.profile} missing (apt-get install "
                    "golang-github-containers-common)")
        return None

    def command(self, ctx, cmd, run):
        extra = [ctx.profile if a == "{profile}" else a for a in self.extra]
        return Cmd([*ctx.jailer, "run", "--level", self.level, *extra, ctx.root, *cmd])


class Ablation(Subject):
    """A jailer level with Spec fields flipped that no flag expresses, started through
    ``jailer.bench.ablate`` (to_spec, then the flips, then Launch: what ``jailer run`` does)."""

    kind = "ablation"

    def __init__(self, name: str, level: str, title: str, flips: dict,
                 workloads: frozenset) -> None:
        self.name, self.level, self.title = name, level, title
        self.flips, self.workloads = flips, workloads

    def command(self, ctx, cmd, run):
        cfg = json.dumps({"level": self.level, "set": self.flips})
        return Cmd([*ctx.python, cfg, ctx.root, *cmd])


def helper_prefix(module: str = "jailer.bench.ablate") -> list[str]:
    """The argv prefix running ``module.main(argv)``: this interpreter without site (as the
    jailer console script starts), given this process's import path."""
    paths = [p for p in sys.path if p]
    code = (f"import sys; sys.path[0:0] = {paths!r}; from {module} import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-S", "-c", code]


class Chroot8(Subject):
    name, kind, title = "chroot8", "peer", "chroot(8) of coreutils"
    workloads = frozenset({"start"})

    def missing(self, ctx):
        return None if shutil.which("chroot") else "chroot(8) not installed"

    def command(self, ctx, cmd, run):
        return Cmd(["chroot", ctx.root, *cmd])


class Bwrap(Subject):
    name, kind, title = "bwrap", "peer", "bubblewrap --unshare-all, the rootfs bound at /"

    def missing(self, ctx):
        return None if shutil.which("bwrap") else "bwrap not installed (apt-get install " \
                                                  "bubblewrap)"

    def command(self, ctx, cmd, run):
        return Cmd(["bwrap", "--bind", ctx.root, "/", "--proc", "/proc", "--dev", "/dev",
                    "--unshare-all", "--die-with-parent", *cmd])


class Oci(Subject):
    """runc or crun: ``run`` of a bundle whose config is the runtime's own ``spec``, with the
    rootfs and the command; optionally the Docker default seccomp profile."""

    kind = "peer"

    def __init__(self, runtime: str, docker: bool = False) -> None:
        self.runtime, self.docker = runtime, docker
        self.name = f"{runtime}-docker" if docker else runtime
        self.title = (f"{runtime} run with the Docker default seccomp profile" if docker
                      else f"{runtime} run, its default spec (no seccomp)")
        self.workloads = frozenset({"start", "syscall"}) if docker else ALL

    def missing(self, ctx):
        if not shutil.which(self.runtime):
            return f"{self.runtime} not installed (apt-get install {self.runtime})"
        if self.docker and not os.path.exists(ctx.profile):
            return f"{ctx.profile} missing (apt-get install golang-github-containers-common)"
        return None

    def bundle(self, ctx: Context, cmd: list[str]) -> str:
        key = (self.runtime, self.docker, tuple(cmd))
        if key not in ctx.bundles:
            bundle = os.path.join(ctx.top, "bundles", f"{self.name}-{len(ctx.bundles)}")
            os.makedirs(bundle)
            subprocess.run([self.runtime, "spec"], cwd=bundle, check=True,
                           capture_output=True)
            path = os.path.join(bundle, "config.json")
            with open(path) as f:
                spec = json.load(f)
            spec["process"].update(terminal=False, args=list(cmd))
            spec["root"] = {"path": ctx.root, "readonly": False}
            if self.docker:
                with open(ctx.profile) as f:
                    spec["linux"]["seccomp"] = docker_to_oci(json.load(f))
            with open(path, "w") as f:
                json.dump(spec, f)
            ctx.bundles[key] = bundle
        return ctx.bundles[key]

    def command(self, ctx, cmd, run):
        state = os.path.join(ctx.top, f"state-{self.runtime}")
        cid = f"jlbench-{os.getpid()}-{run}"
        argv = [self.runtime, "--root", state, "run", "--bundle", self.bundle(ctx, cmd), cid]

        def cleanup() -> None:  # `run` deletes the container; a failed run may not
            if os.path.exists(os.path.join(state, cid)):
                subprocess.run([self.runtime, "--root", state, "delete", "-f", cid],
                               capture_output=True)

        return Cmd(argv, cleanup=cleanup)


def docker_to_oci(profile: dict) -> dict:
    """The Docker-format default profile as an OCI linux.seccomp object (what runc and crun
    read), resolved for x86_64 and Docker's default capabilities."""
    syscalls = []
    for rule in profile["syscalls"]:
        inc, exc = rule.get("includes", {}), rule.get("excludes", {})
        if not set(inc.get("caps", [])) <= DOCKER_CAPS or set(exc.get("caps", [])) & DOCKER_CAPS:
            continue
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if "amd64" in exc.get("arches", []):
            continue
        syscalls.append({k: v for k, v in rule.items()
                         if k in ("names", "action", "args", "errnoRet")})
    return {"defaultAction": profile["defaultAction"],
            "defaultErrnoRet": profile.get("defaultErrnoRet", 1),
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": syscalls}


def qemu_user() -> str | None:
    """The qemu user-mode emulator for this machine's architecture, if installed."""
    arch = platform.machine()
    for name in (f"qemu-{arch}-static", f"qemu-{arch}"):
        path = shutil.which(name)
        if path:
            return path
    return None


class QemuUser(Subject):
    name, kind = "qemu-user", "emulation"
    title = "qemu user-mode emulation (TCG) of the same static binary"
    outside = True

    def missing(self, ctx):
        if qemu_user() is None:
            return (f"qemu-{platform.machine()}-static not installed (jailer bench --setup, "
                    "or apt-get install qemu-user-static)")
        return None

    def command(self, ctx, cmd, run):
        path, argv0, args = host_command(ctx.root, cmd)
        return Cmd([qemu_user(), *(["-0", argv0] if argv0 else []), path, *args])


class Bridge(Subject):
    """A named jail with ``--net bridge`` running the workload's server; the client runs on
    the host and reaches it over the bridge and the jail's veth."""

    name, kind = "container-bridge", "jailer"
    title = "named container jail, --net bridge: host -> veth -> jail"
    workloads = NET | {"density"}
    outside = True
    PORT = "5201"

    def target(self, ctx):
        return (ctx.server["ip"], self.PORT)

    def setup(self, ctx, workload):
        if workload in NET:
            from jailer.bench import named

            ctx.server.update(named.start_server(ctx, self.PORT))

    def teardown(self, ctx):
        if ctx.server:
            from jailer.bench import named

            named.remove(ctx, ctx.server.pop("name"))
            ctx.server.clear()

    def recover(self, ctx):
        from jailer.bench import named

        return bool(ctx.server) and named.ensure_link(ctx)

    def command(self, ctx, cmd, run):
        from jailer.bench import named

        if ctx.server:
            named.ensure_link(ctx)
        path, argv0, args = host_command(ctx.root, cmd)
        return Cmd([path, *args])


SUBJECTS: dict[str, Subject] = {s.name: s for s in (
    Host(),
    Jailer("chroot", "chroot", "jailer --level chroot: chroot(2) only", workloads=ALL),
    Jailer("jail", "jail", "jailer --level jail: namespaces, user ns, jail policy; the rootfs "
           "directory as root"),
    Jailer("container", "container", "jailer --level container: jail + cgroup + overlay root",
           workloads=ALL | {"density"}),
    Jailer("container-noseccomp", "container", "container with --seccomp unconfined",
           extra=("--seccomp", "unconfined"), workloads=frozenset({"start", "syscall"})),
    Jailer("container-docker", "container", "container with the Docker default profile",
           extra=("--seccomp", "{profile}"), workloads=frozenset({"start", "syscall"}),
           needs_profile=True),
    Ablation("container-nouserns", "container", "container without a user namespace "
             "(Spec.userns = False)", {"userns": False},
             frozenset({"start", "syscall", "fileio", "files"})),
    Ablation("jail-overlay", "jail", "jail with an overlay root like container's "
             "(Spec.cow = True), no cgroup", {"cow": True},
             frozenset({"start", "fileio", "files"})),
    Bridge(),
    Chroot8(),
    Bwrap(),
    Oci("runc"), Oci("crun"), Oci("runc", docker=True), Oci("crun", docker=True),
    QemuUser(),
)}
