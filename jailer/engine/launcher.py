"""Start one container from a ``Spec``: a short, linear sequence of kernel calls.

Processes (jail and container levels; the messages are ``jailer.engine.protocol``'s)::

    runtime (host, stays outside)          setup child (host root)           pid 1
    ─────────────────────────────          ───────────────────────           ─────
    prepare(): uid range, layers, cgroup
    spawn(): fork ──────────────────────►  make the user namespace (helper)
                                           own mount ns (rslave), host_plan
                                           setns(user ns), unshare the rest
                                           fork ─────────────────────────►  (waits for Go)
    ◄── Pid ────────────────────────────── exit
    reap child, on_pid, Go ────────────────────────────────────────────────►  spec.ns_plan,
                                                                              hostname, lo up,
                                                                              pty, pivot_root,
                                                                              user, exec
    ◄── EOF on the up pipe (exec happened) or Failed ───────────────────────
    supervise: relay pty, forward signals, timeout, reap; undo everything

The runtime is a child subreaper, so pid 1 becomes its child when the setup child exits, and
no Python process stays inside the container. The mount plans are replayed as the front end
built them (``jailer.engine.mounts``), with the start's own facts filled in.
"""

from __future__ import annotations

import _signal as signal  # the C module (`signal` imports enum)
import fcntl  # imported here: after chroot/pivot_root the library is out of reach
import os

from jailer.core.errors import (
    EXIT_NOEXEC,
    EXIT_NOTFOUND,
    EXIT_RUNTIME,
    EXIT_TIMEOUT,
    JailerError,
    convert,
    hold_log,
    log_line,
)
from jailer.core.spec import Spec
from jailer.engine.protocol import CREATED, FAILED, GO, MOUNTED, PID, PTY, RECORDED, recv, send
from jailer.kernel import proc
from jailer.kernel import syscalls as S
from jailer.policy import caps as C

TYPE_CHECKING = False  # (typing is not imported on the start path)
if TYPE_CHECKING:
    from jailer.engine.mounts import Facts, Mounter

_NS_FLAGS = {"mount": S.CLONE_NEWNS, "pid": S.CLONE_NEWPID, "uts": S.CLONE_NEWUTS,
             "ipc": S.CLONE_NEWIPC, "net": S.CLONE_NEWNET, "cgroup": S.CLONE_NEWCGROUP,
             "time": S.CLONE_NEWTIME}
# /proc/PID/ns/ names and their clone flags, user first (setns enters it first anyway)
_NS_FILES = (("user", S.CLONE_NEWUSER), ("mnt", S.CLONE_NEWNS), ("pid", S.CLONE_NEWPID),
             ("uts", S.CLONE_NEWUTS), ("ipc", S.CLONE_NEWIPC), ("net", S.CLONE_NEWNET),
             ("cgroup", S.CLONE_NEWCGROUP), ("time", S.CLONE_NEWTIME))
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
# the catchable signals whose default action ends a process, but for the faults a process
# raises itself (SEGV, BUS, FPE, ILL, TRAP, ABRT, SYS): signal(7)
_ENDING_SIGNALS = (*FORWARDED_SIGNALS, signal.SIGPIPE, signal.SIGALRM, signal.SIGPROF,
                   signal.SIGVTALRM, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGIO,
                   signal.SIGPWR, signal.SIGSTKFLT)
TIOCSCTTY = 0x540E
TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431


class Result:
    """How a container ended."""

    __slots__ = ("returncode", "stdout", "stderr", "id", "stats", "oom_killed")

    def __init__(self, returncode: int, stdout: bytes | None = None,
                 stderr: bytes | None = None, id: str = "") -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.id = id
        self.stats = None  # cgroups.Stats when the container had a cgroup
        self.oom_killed = False

    def __repr__(self) -> str:
        return f"Result(returncode={self.returncode})"


def exit_code(status: int) -> int:
    """Wait status -> shell-style exit code (128+N for a signal)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class LaunchOptions:
    """How to start (everything but the Spec): all optional.

    ``stdio``: the container's fds 0-2. ``data_dir``: jailer's data directory (default
    ``paths.data_dir()``). ``base``, ``gid_base`` and ``layer_dir``: a named jail's fixed
    uid/gid range and persistent upper-layer directory (default: a range from the pool and a
    throw-away layer). ``on_pid(pid)`` runs once pid 1 exists, before it goes on (network
    set-up, OCI hooks); what it returns (bytes or None) is the state pid 1's OCI
    startContainer hooks read. ``on_mounted(pid)`` (OCI create-time hooks) runs once pid 1
    has made its mounts, right before pivot_root; what it returns replaces ``on_pid``'s.
    ``cgroup_parent``: a file in /proc/self/cgroup's format naming
    the parent cgroups (a delegated jail's). ``cgroup_name``: the container's cgroup (default
    jailer-<id>), from the hierarchies' root if ``cgroup_root`` (OCI). ``exec_fifo`` (OCI
    create): pid 1 stops right before exec until `start` opens this fifo; the container then
    belongs to the caller's subreaper. ``record_owner``: who answers for this start (default:
    this process). ``subreaper``: False when the caller reaps the container (a detached OCI
    exec). ``relay_stdio`` (exec only): relay the caller's stdio through pipes (off when the
    caller owns the stdio it gives, as conmon does). ``work_dir``: an empty directory of
    the caller's (root's alone) to mount on (an OCI container's): with a mount namespace of
    its own, the setup child stages the config's host-side mounts there so that pid 1 puts
    them back in the config's order (without one they stay where they were made); sharing
    the runtime's (``Spec.shares_mounts``), the root is assembled on it, and ``cleanup``
    (or the container's delete) detaches it. ``systemd_cgroup``: an OCI ``slice:prefix:name``
    (runc's ``--systemd-cgroup``): the container's cgroup is that transient systemd scope,
    started with pid 1 in it as soon as pid 1 exists (before its mounts); pure cgroup v2 only.
    """

    __slots__ = ("stdio", "data_dir", "base", "gid_base", "layer_dir", "on_pid", "on_mounted",
                 "cgroup_parent", "cgroup_name", "cgroup_root", "exec_fifo", "record_owner",
                 "subreaper", "relay_stdio", "work_dir", "systemd_cgroup")

    def __init__(self, *, stdio: tuple[int, int, int] = (0, 1, 2), data_dir: str | None = None,
                 base: int = 0, gid_base: int = 0, layer_dir: str | None = None, on_pid=None,
                 cgroup_parent: str | None = None, cgroup_name: str | None = None,
                 cgroup_root: bool = False, exec_fifo: str | None = None,
                 record_owner: str | None = None, subreaper: bool = True,
                 relay_stdio: bool = True, on_mounted=None,
                 work_dir: str | None = None, systemd_cgroup: str | None = None) -> None:
        self.stdio, self.data_dir, self.on_pid = stdio, data_dir, on_pid
        self.on_mounted = on_mounted
        self.base, self.gid_base, self.layer_dir = base, gid_base, layer_dir
        self.cgroup_parent, self.cgroup_name, self.cgroup_root = (cgroup_parent, cgroup_name,
                                                                  cgroup_root)
        self.exec_fifo, self.record_owner = exec_fifo, record_owner
        self.subreaper, self.relay_stdio = subreaper, relay_stdio
        self.work_dir = work_dir
        self.systemd_cgroup = systemd_cgroup


class Launch:
    """One start of one container: ``run()`` returns its ``Result``; ``start_detached()``
    leaves it running; ``prepare()`` then ``spawn()`` are the two halves of either."""

    def __init__(self, spec: Spec, options: LaunchOptions | None = None,
                 sys_: S.Syscalls | None = None) -> None:
        from jailer.core import paths

        opts = self.opts = options or LaunchOptions()
        self.spec = spec
        self.sys = sys_ or S.Syscalls()
        self.stdio = opts.stdio
        self.data_dir = opts.data_dir or paths.data_dir()
        self.base = opts.base
        self.fixed_base = bool(opts.base)
        self.cdir: str | None = opts.layer_dir
        self.persistent = opts.layer_dir is not None
        # an unprivileged user starting a jail delegated to them: the user namespace maps
        # their subordinate ids (newuidmap), and the root is assembled inside it
        self.rootless = os.geteuid() != 0
        self.subgid = opts.gid_base or opts.base
        self.cgroup_parent = opts.cgroup_parent or "/proc/self/cgroup"
        self._fifo_fd = -1
        self._stage_fd = -1  # pid 1: the staged mounts (see LaunchOptions.work_dir)
        self._r_down = -1  # pid 1: the down pipe (a second Go after on_mounted, Recorded)
        self._w_down = -1  # OCI create, after spawn(): the down pipe, for recorded()
        self.hook_state: bytes | None = None  # what on_pid returned, for pid 1's hooks
        self.root = spec.rootfs
        self.host_plan = spec.host_plan  # rootless: binds from pinned sources
        self.pool = None
        self.init_path: str | None = None
        self.bpf: bytes | None = None
        self.cg = None  # cgroups.Cgroup
        self._cg_started = False  # a systemd scope: started once pid 1 exists
        self.scope = None  # cgroups.systemd.HeldScope: the place of our cgroup (see prepare)
        self.record: str | None = None
        self.owner = ""  # this runtime process, as idpool.process_owner() names it
        self.store = None  # images.store.Store, when the root is an image
        self.loopdev: str | None = None
        self.cgroup_fds: list[int] = []
        self._pid = 0  # host pid of the container's first process
        self._master = -1  # the pty master, when the container has a terminal
        self._was_subreaper: bool | None = None  # ours before spawn() set it
        self._pending: list[int] = []
        self._sock = None
        self._helper = 0  # the user namespace helper process, in the setup child
        self._stage = "start"  # what a child is doing (the failure it reports)

    @property
    def pid(self) -> int:
        """The host pid of the container's first process (0 until it exists)."""
        return self._pid

    @property
    def master(self) -> int:
        """The pty master (-1 without a terminal); the caller owns it after ``spawn()``."""
        return self._master

    @property
    def cgroup(self):
        """The container's ``cgroups.Cgroup``, or None."""
        return self.cg

    @property
    def cgroup_record(self) -> str:
        """The container's cgroup as a start records it: its name below the parent cgroups
        (from the hierarchies' root if ``cgroup_from_root``)."""
        if self.opts.systemd_cgroup is not None:
            return self._systemd_handle().unit.path.strip("/")
        return self.opts.cgroup_name or f"jailer-{self.spec.id}"

    @property
    def cgroup_from_root(self) -> bool:
        return self.opts.cgroup_root or self.opts.systemd_cgroup is not None

    # ── preparation in the runtime process ─────────────────────────────────────────────
    def prepare(self) -> None:
        """Everything made on the host before the first fork: the start record, init binary,
        image hold, loop device, cgroup, seccomp filter, uid range and layers."""
        spec = self.spec
        if spec.pivot_root and spec.host_plan is None:
            raise JailerError("the Spec has no mount plan (build it with a front end: "
                              "jailer.frontends)", stage="start")
        if spec.pivot_root and spec.userns and spec.idmap and not spec.cow \
                and not spec.readonly and not self.rootless and os.geteuid() == 0:
            # a writable in-place root, however the Spec was made (CLI, jail, Python API):
            # only out of other users' reach (each directory above it is root's alone, so
            # no other user can swap the path between this check and the bind)
            from jailer.engine.rootfs import check_inplace_root

            check_inplace_root(spec.rootfs)
        if spec.pivot_root:  # the mounts are replayed in children, some chrooted: load it now
            import jailer.engine.mounts  # noqa: F401
        if spec.cgroup and self.opts.systemd_cgroup is None and not self.opts.cgroup_root \
                and not self.rootless:
            self._own_scope()
        self._record_start()
        if spec.init:
            from jailer.engine.initbin import init_binary

            self.init_path = init_binary(self.data_dir)
        if spec.image:
            from images.store import Store

            self.store = Store(os.path.join(self.data_dir, "images"))
            self.store.add_user(spec.image, spec.id, self.owner)
        if spec.packed and spec.cow:
            from images import loop

            self.loopdev = loop.attach(spec.packed[0], readonly=True, autoclear=True)
        if spec.cgroup:
            self._make_cgroup()
        if spec.seccomp is not None:
            from jailer.policy import seccomp

            self.bpf = seccomp.cached_bpf(spec.seccomp, os.path.join(self.data_dir, "seccomp"))
        if spec.userns and spec.uid_mappings:  # an OCI config brings its own mappings
            self.base = next((h for c, h, _n in spec.uid_mappings if c == 0), 0)
            self.subgid = next((h for c, h, _n in spec.gid_mappings or () if c == 0), 0)
            self.fixed_base = True
        if spec.userns and not self.fixed_base:
            from jailer.engine.idpool import IdPool

            self.pool = IdPool(os.path.join(self.data_dir, "idpool"))
            self.base = self.pool.allocate()
        if spec.cow:
            if not self.persistent:
                cdirs = os.path.join(self.data_dir, "containers")
                os.makedirs(cdirs, mode=0o700, exist_ok=True)
                self.cdir = os.path.join(cdirs, spec.id)
            os.makedirs(self.cdir, 0o700, exist_ok=self.persistent)
            for sub in ("lower", "upper", "work", "merged"):
                if not os.path.isdir(os.path.join(self.cdir, sub)):
                    os.mkdir(os.path.join(self.cdir, sub), 0o755)
            os.chown(os.path.join(self.cdir, "upper"), self.base, self.base)
            self.root = os.path.join(self.cdir, "merged")
        if spec.shares_mounts:  # never on the engine's rootfs path: on a directory of ours
            if not self.opts.work_dir:
                raise JailerError("a container sharing the runtime's mount namespace needs "
                                  "a work directory (LaunchOptions.work_dir)", stage="start")
            self.root = self.opts.work_dir

    def _release_loop(self) -> None:
        """Drop our hold on the packed image's loop device; the mount (if any) keeps it,
        and autoclear frees it when the container's mount namespace goes."""
        if self.loopdev:
            from images import loop

            loop.release(self.loopdev)
            self.loopdev = None

    def _record_start(self) -> None:
        """``<data>/starts/<id>`` names this runtime process, so that ``jailer gc`` can undo
        a start whose runtime was SIGKILLed (its cgroup, upper layer); removed by cleanup."""
        from jailer.engine.idpool import process_owner

        starts = os.path.join(self.data_dir, "starts")
        os.makedirs(starts, mode=0o700, exist_ok=True)
        self.record = os.path.join(starts, self.spec.id)
        self.owner = self.opts.record_owner or process_owner()
        with open(self.cgroup_parent) as src:  # where the cgroup goes, for a gc run elsewhere
            parents = src.read()
        if self.scope is not None:  # from here on, below the scope (and so for a jail's state)
            parents = f"0::/{self.scope.path.strip('/')}\n"
            if self.cgroup_parent != "/proc/self/cgroup":
                with open(self.cgroup_parent, "w") as f:
                    f.write(parents)
        # the record first, then its "@cgroup": a kill -9 in between leaves a record that gc
        # finds (and undoes below its own cgroups: none was made yet), never a lone @cgroup
        with open(self.record, "w") as f:
            f.write(f"{self.owner}\n{self.spec.image or ''}\n{self.cgroup_record}\n"
                    f"{'root' if self.cgroup_from_root else ''}\n")
        with open(self.record + "@cgroup", "w") as f:
            f.write(parents)
        if self.scope is not None:
            self.cgroup_parent = self.record + "@cgroup"

    def _make_cgroup(self) -> None:
        """The container's cgroup, below our own; pid 1 joins it through these fds last. A
        systemd scope is only named here: systemd makes it with pid 1 in it (``_pid_exists``)."""
        import cgroups

        if self.opts.systemd_cgroup is not None:
            self.cg = self._systemd_handle()
            return
        try:
            cg = cgroups.open_manager(self.cgroup_record, proc_cgroup=self.cgroup_parent,
                                      parent="/" if self.opts.cgroup_root else None)
            # an OCI config's cgroupsPath may name an existing cgroup: joined if empty, as
            # runc does (and removed at delete, as runc does); one with processes is refused
            existing = self.spec.oci and cg.exists()
            if existing and cg.procs():
                raise cgroups.CgroupError(f"cgroups: the container's cgroup {cg.path} is not "
                                          f"empty: {len(cg.procs())} process(es) in it")
            self.cg = cg.create(self._limits(), exist_ok=existing)
            self.cgroup_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC)
                               for p in self.cg.procs_paths]
        except (cgroups.CgroupError, OSError) as e:
            raise JailerError(str(e).removeprefix("cgroups: "), stage="cgroups",
                              errno=getattr(e, "errno", 0) or 0) from None

    def _own_scope(self) -> None:
        """On a systemd host (pure cgroup v2) where the cgroup we would go below holds
        processes (a login session's, a service's: none of its children can have
        controllers), the container's cgroup goes in a scope of its own instead,
        ``jailer.slice/jailer-ID.scope``, held until this process (or the monitor it
        becomes) exits: as ``systemd-run --scope`` and BenchExec do. No-op elsewhere."""
        import cgroups

        if not cgroups.needs_scope(self.cgroup_parent):
            return
        try:
            self.scope = cgroups.open_held_scope(
                f"jailer.slice:jailer:{self.spec.id}",
                description=f"jailer {self.spec.id}").start()
        except cgroups.CgroupError as e:
            raise JailerError(str(e).removeprefix("cgroups: "), stage="cgroups",
                              errno=getattr(e, "errno", 0) or 0) from None

    def _systemd_handle(self):
        """The ``cgroups.SystemdCgroup`` that ``opts.systemd_cgroup`` names (made once)."""
        if self.cg is None:
            import cgroups

            try:
                self.cg = cgroups.open_systemd(self.opts.systemd_cgroup, self.spec.id,
                                               description=f"jailer container {self.spec.id}")
            except cgroups.CgroupError as e:
                raise JailerError(str(e).removeprefix("cgroups: "), stage="cgroups") from None
        return self.cg

    def _start_scope(self) -> None:
        """systemd starts the container's scope with pid 1 in it, and its limits."""
        import cgroups

        try:
            self.cg.create(self._limits(), pid=self._pid)
        except cgroups.CgroupError as e:
            raise JailerError(str(e).removeprefix("cgroups: "), stage="cgroups",
                              errno=getattr(e, "errno", 0) or 0) from None
        self._cg_started = True

    def _limits(self):
        """The spec's limits plus the device cgroup: deny by default, then the config's rules
        (OCI ``linux.resources.devices``), the runtime-spec's default devices and the nodes
        the config lists (``linux.devices``), in that order. A rootless start (a delegated
        jail's user) adds none: it may not set device rules, and the delegated parent's,
        which root set, hold for every cgroup below it."""
        import cgroups

        lim = self.spec.limits or cgroups.Limits()
        if self.rootless:
            return lim.replace(devices=None)
        nodes = [cgroups.DeviceRule(True, d.kind, d.major, d.minor)
                 for d in self.spec.devices if d.kind in ("b", "c")]
        return lim.replace(devices=[*(lim.devices or ()), *cgroups.DEFAULT_DEVICES, *nodes])

    def _release_process(self) -> None:
        """Give back what this process took for the start: subreaper, cgroup fds, the down
        pipe of an OCI create never recorded (pid 1 then exits)."""
        if self._was_subreaper is False:
            self.sys.prctl(S.PR_SET_CHILD_SUBREAPER, 0)
        if self._w_down >= 0:
            os.close(self._w_down)
            self._w_down = -1
        for fd in self.cgroup_fds:
            os.close(fd)
        self.cgroup_fds = []

    def cleanup(self) -> None:
        """Undo what the start made on the host: cgroup, upper layer, the id range, and the
        root of a container that shares the runtime's mount namespace."""
        self._release_process()
        if self.spec.shares_mounts and self.opts.work_dir:
            from jailer.engine.mounts import detach_tree

            detach_tree(self.opts.work_dir)
        self._release_loop()
        if self.store is not None:
            self.store.remove_user(self.spec.image, self.spec.id)
            self.store = None
        if self.cg is not None and (self._cg_started or self.opts.systemd_cgroup is None):
            self.cg.delete()  # (never a scope of that name that another start owns)
        self.cg = None
        if self.scope is not None:
            self.scope.stop()
            self.scope = None
        if self.cdir and os.path.isdir(self.cdir) and not self.persistent:
            from jailer.kernel.fsutil import remove_tree

            if self.spec.keep:
                for sub in ("lower", "work", "merged"):
                    remove_tree(os.path.join(self.cdir, sub))
            else:
                remove_tree(self.cdir)
        if self.pool and self.base:
            self.pool.release(self.base)
            self.base = 0
        if self.record:  # "@cgroup" first (see _record_start)
            try:
                os.unlink(self.record + "@cgroup")
            except FileNotFoundError:
                pass
            os.unlink(self.record)
            self.record = None

    # ── the whole start ─────────────────────────────────────────────────────────────────
    def run(self) -> Result:
        old = {s: signal.signal(s, self._forward) for s in FORWARDED_SIGNALS}
        try:
            self.prepare()
            self.spawn()
            for sig in self._pending:
                self._forward(sig)
            return self._supervise()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.cleanup()

    def start_detached(self) -> tuple[int, int]:
        """Start without supervising: return (pid 1, pty master or -1). The caller owns the
        container from here (it execs the monitor); on failure everything is undone."""
        try:
            self.prepare()
            self.spawn()
        except BaseException:
            self.cleanup()
            raise
        for fd in self.cgroup_fds:
            os.close(fd)
        self.cgroup_fds = []
        return self._pid, self._master

    def _forward(self, signum: int, _frame: object = None) -> None:
        """Pass a signal to the container's first process (queued until it exists)."""
        if not self._pid:
            self._pending.append(signum)
            return
        proc.kill(self._pid, signum)

    def spawn(self) -> None:
        """Fork the setup child and see the start through the handshake (see
        ``jailer.engine.protocol``): pid 1 exists, and has exec'd or (OCI create) waits."""
        spec = self.spec
        r_up, w_up = os.pipe2(os.O_CLOEXEC)
        r_down, w_down = os.pipe2(os.O_CLOEXEC)
        if spec.tty:
            import socket

            self._sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if spec.pivot_root and self.opts.subreaper and not self.opts.exec_fifo:
            # a library caller (jailer.run) gets its own state back in cleanup()
            self._was_subreaper = self.sys.child_subreaper()
            self.sys.prctl(S.PR_SET_CHILD_SUBREAPER, 1)
        if self.opts.exec_fifo:  # pid 1 reaches it through this fd after pivot_root
            self._fifo_fd = os.open(self.opts.exec_fifo, os.O_PATH | os.O_CLOEXEC)
            hold_log()  # and the engine's --log, where it reports what fails after create
        pid = os.fork()
        if pid == 0:
            os.close(r_up)
            os.close(w_down)
            if self._sock is not None:
                self._sock.close()
                self._sock = child_sock
            self._child(w_up, r_down)  # never returns
        os.close(w_up)
        os.close(r_down)
        if self._sock is not None:
            child_sock.close()
        try:
            self._handshake(pid, r_up, w_down)
            self._release_loop()  # mounted by now
        except BaseException:
            if self._pid:
                _kill(self._pid)
            _reap(pid)
            raise
        finally:
            os.close(r_up)
            if self.opts.exec_fifo and self._pid:
                self._w_down = w_down  # for recorded()
            else:
                os.close(w_down)

    def recorded(self) -> None:
        """OCI create: the container is recorded 'created' (state, pid file): pid 1 may now
        wait for `start`. Until this, a `jailer create` that dies (kill -9) takes pid 1 with
        it: pid 1 waits for this message and exits at EOF, so no created container is left
        that nothing knows of."""
        if self._w_down >= 0:
            send(self._w_down, RECORDED)
            os.close(self._w_down)
            self._w_down = -1

    def _handshake(self, child: int, r_up: int, w_down: int) -> None:
        """Learn pid 1, let it go, then wait for exec (EOF) or a structured error."""
        while True:
            msg = recv(r_up)
            if msg is None:
                if not self._pid:
                    _, status = os.waitpid(child, 0)
                    raise JailerError(f"setup process died ({exit_code(status)})",
                                      stage="start")
                return
            if msg.kind == FAILED:
                err = JailerError.from_dict(msg.value)
                if self._pid:
                    _reap(self._pid)
                raise err
            if msg.kind == PID:
                self._pid = msg.value
                if self._pid != child:
                    os.waitpid(child, 0)  # the intermediate exits; pid 1 is now ours
                    self._pid_exists()
                    send(w_down, GO, self.hook_state)
            elif msg.kind == PTY:
                import socket

                _, fds, _, _ = socket.recv_fds(self._sock, 16, 1)
                self._master = fds[0]
            elif msg.kind == MOUNTED:
                self.hook_state = self.opts.on_mounted(self._pid)
                send(w_down, GO, self.hook_state)
            elif msg.kind == CREATED:
                return  # OCI create: pid 1 waits on the exec fifo

    def _pid_exists(self) -> None:
        """pid 1 exists and waits for Go: its oom_score_adj, then the caller's ``on_pid``
        (its answer is the state startContainer hooks get, OCI)."""
        if self.cg is not None and self.opts.systemd_cgroup is not None:
            self._start_scope()
        if self.spec.oom_score_adj is not None:
            with open(f"/proc/{self._pid}/oom_score_adj", "w") as f:
                f.write(str(self.spec.oom_score_adj))
        if self.opts.on_pid is not None:
            self.hook_state = self.opts.on_pid(self._pid)

    # ── children ───────────────────────────────────────────────────────────────────────
    def _child_stdio(self) -> None:
        """A child's first step: default signal handlers, the container's stdio as 0-2."""
        for s in FORWARDED_SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        for i, fd in enumerate(self.stdio):
            if fd != i:
                os.dup2(fd, i)

    def _child(self, w_up: int, r_down: int) -> None:
        """The setup child (host root): the user namespace, the host-side mounts in a
        mount namespace of its own, the other namespaces, then pid 1. At the chroot level it
        is pid 1 itself."""
        self._stage = "start"
        try:
            self._child_stdio()
            if not self.spec.pivot_root:
                self.sys.prctl(S.PR_SET_PDEATHSIG, signal.SIGKILL)
                self._r_down = r_down
                send(w_up, PID, os.getpid())
                self._container_init(w_up, None)
            self._stage = "prctl"
            self.sys.prctl(S.PR_SET_PDEATHSIG, signal.SIGKILL)
            self.sys.prctl(S.PR_SET_DUMPABLE, 0)
            self._stage = "rlimits"
            self._set_rlimits()
            userns_fd = self._user_namespace(w_up)
            self._host_mounts(userns_fd)
            self._enter_namespaces(userns_fd)
            self._fork_pid1(w_up, r_down)
        except BaseException as e:  # noqa: BLE001 - every failure must reach the parent
            self._reap_helper()
            _report(w_up, self._stage, e)

    def _user_namespace(self, w_up: int) -> int:
        """The container's user namespace as an fd (-1 without one); rootless, already
        entered (with the cgroup joined first)."""
        userns_fd = -1
        if "user" in self.spec.ns_paths:
            self._stage = "user namespace"
            userns_fd = os.open(self.spec.ns_paths["user"], os.O_RDONLY | os.O_CLOEXEC)
        elif self.spec.userns:
            self._stage = "user namespace"
            userns_fd = self._make_userns(w_up)
        if self.rootless:
            self._stage = "join cgroup"
            self._join_cgroup_early()
            self._stage = "enter user namespace"
            userns_fd = self._enter_userns_early(userns_fd)
        return userns_fd

    def _host_mounts(self, userns_fd: int) -> None:
        """A mount namespace of our own with the host plan done in it; the root becomes the
        working directory. Its mounts are slaves (as runc's, bubblewrap's): nothing done here
        reaches the host, while a mount made on the host later under a bind's source still
        reaches the container (a bind with "rslave" or "rshared" asks for that)."""
        joined = self.spec.ns_paths.get("mount")
        if joined:  # (as runc: the root is assembled in it, and pid 1 pivots into it there)
            self._stage = f"join mount namespace {joined}"
            nsfd = os.open(joined, os.O_RDONLY | os.O_CLOEXEC)
            self.sys.setns(nsfd, S.CLONE_NEWNS)
            os.close(nsfd)
        elif not self.spec.shares_mounts:
            self._stage = "mount namespace"
            self.sys.unshare(S.CLONE_NEWNS)
        if not self.spec.shares_mounts:
            self.sys.mount(None, "/", None, S.MS_REC | S.MS_SLAVE)
        self._stage = "mounts"
        if self.rootless:
            self._rootless_root()
        owner = 0 if self.rootless else self.base
        from jailer.engine.mounts import Mounter, fill_in  # loaded by prepare()

        m = Mounter(self.sys, self.root, owner, userns_fd)
        m.apply(fill_in(self.host_plan, self._facts()))
        m.close()
        # pid 1 reaches its root through the working directory, which unshare(CLONE_NEWNS)
        # moves to the copy in the new namespace: the path may cross host directories
        # (0700 /root, /var/lib/jailer/containers) that the container's root cannot enter.
        os.chdir(self.root)

    def _staging(self) -> str | None:
        """Where the config's host-side mounts are staged (see LaunchOptions.work_dir): only
        in a mount namespace of the container's own making."""
        spec = self.spec
        if spec.shares_mounts or "mount" in spec.ns_paths:
            return None
        return self.opts.work_dir

    def _facts(self) -> Facts:
        """What the host plan's start-time records stand for in this start."""
        from jailer.engine.mounts import Facts

        spec = self.spec
        return Facts(root=self.root, rootfs=spec.rootfs, cow=spec.cow, cdir=self.cdir,
                     packed=(self.loopdev, spec.packed[1]) if self.loopdev else None,
                     idmap=spec.userns and spec.idmap, init_path=self.init_path,
                     rootless=self.rootless, shared=spec.shares_mounts,
                     stage=self._staging())

    def _enter_namespaces(self, userns_fd: int) -> None:
        """Become the container's root in its user namespace, then unshare the others (the
        cgroup namespace comes last, in pid 1) and join those the config names by path."""
        userns = userns_fd >= 0 and not self.rootless
        if userns:
            self._stage = "enter user namespace"
            self.sys.setns(userns_fd, S.CLONE_NEWUSER)
            os.close(userns_fd)
            self.sys.setgroups_empty()
        self._reap_helper()
        self._stage = "namespaces"
        flags = 0
        for name in self.spec.namespaces:
            if name != "cgroup":  # unshared last, once in the container's cgroup
                flags |= _NS_FLAGS[name]
        self.sys.unshare(flags)
        if self._staging():  # (still host uid 0 here: the directory is root's alone)
            self._stage_fd = os.open(self.opts.work_dir, os.O_PATH | os.O_DIRECTORY
                                     | os.O_CLOEXEC)
        if userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if self.spec.time_offsets:  # before the first process (pid 1, forked next) enters it
            self._stage = "time namespace offsets"
            with open("/proc/self/timens_offsets", "w") as f:
                f.write("".join(f"{clock} {secs} {nanos}\n" for clock, (secs, nanos)
                                in self.spec.time_offsets.items()))
        for name, path in self.spec.ns_paths.items():  # an OCI config's "path"s
            if name in ("user", "mount"):  # (entered above)
                continue
            self._stage = f"join {name} namespace {path}"
            nsfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            self.sys.setns(nsfd, _NS_FLAGS[name])
            os.close(nsfd)
        self._stage = "namespaces"

    def _fork_pid1(self, w_up: int, r_down: int) -> None:
        """Fork pid 1 (the first process of the new pid namespace), name it up, exit."""
        pid = os.fork()
        if pid == 0:
            self._stage = "wait"
            go = recv(r_down)
            if go is None or go.kind != GO:
                os._exit(EXIT_RUNTIME)
            self.hook_state = go.value
            self._r_down = r_down
            if not self.opts.exec_fifo:  # an OCI container outlives `jailer create`
                self.sys.prctl(S.PR_SET_PDEATHSIG, signal.SIGKILL)
            else:  # `kill` of a created container ends it (see _end_on_signals)
                _end_on_signals()
            self._container_init(w_up, os.open(".", os.O_PATH | os.O_CLOEXEC))
        send(w_up, PID, pid)
        os._exit(0)

    def _join_cgroup_early(self) -> None:
        """Rootless on cgroup v1: only a process of the same uid may be moved, and the
        container's root is another uid; so join now, as the user, and let pid 1 inherit
        the cgroup (this short-lived setup process leaves before the workload runs)."""
        for fd in self.cgroup_fds:
            os.write(fd, b"0")
            os.close(fd)
        self.cgroup_fds = []

    def _enter_userns_early(self, userns_fd: int) -> int:
        """Rootless: enter the container's user namespace before making any mount (only
        there are we allowed to). We keep our own uid for now, with every capability in it."""
        self.sys.setns(userns_fd, S.CLONE_NEWUSER)
        os.close(userns_fd)
        return -1

    def _rootless_root(self) -> None:
        """Rootless, in the new mount namespace: pin what only this user can reach (its home
        may be 0700) as O_PATH fds, become the container's root, and bind the root onto
        itself; from here on paths go through /proc/self/fd."""
        def pin(path: str) -> str:
            return f"/proc/self/fd/{os.open(path, os.O_PATH | os.O_CLOEXEC)}"

        os.chdir(self.root)
        if self.init_path:
            self.init_path = pin(self.init_path)
        from jailer.core.plan import Bind

        self.host_plan = [op.replace(src=pin(op.src)) if isinstance(op, Bind) else op
                          for op in self.host_plan]
        self.sys.setgroups_empty()
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        tree = self.sys.open_tree(".", S.OPEN_TREE_CLONE | S.OPEN_TREE_CLOEXEC
                                  | S.AT_RECURSIVE)
        self.sys.mount_setattr(tree, S.MOUNT_ATTR_NODEV)  # nodev, as every jail root
        self.sys.move_mount(tree, ".")
        self.root = f"/proc/self/fd/{tree}"

    def _make_userns(self, w_up: int) -> int:
        """Create the container's user namespace in a short-lived helper; return its fd."""
        from jailer.engine.mounts import userns_helper  # loaded by prepare()

        def before() -> None:
            if self.rootless:  # newuidmap, run as the user, must reach its /proc entry
                self.sys.prctl(S.PR_SET_DUMPABLE, 1)

        def after() -> None:
            if self.cgroup_fds:
                # The first cgroup migration after a quiet spell waits for an RCU grace
                # period; migrating this throw-away helper now pays it in parallel with
                # the mounts, so pid 1's join right before exec is fast.
                os.write(self.cgroup_fds[0], b"0")

        helper, hold_w = userns_helper(self.sys, (w_up,), before, after)
        try:
            from jailer.engine.idpool import RANGE

            if self.rootless:
                from jailer.engine.subids import newidmap

                newidmap(helper, self.base, self.subgid, RANGE)
                return os.open(f"/proc/{helper}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            from jailer.engine.mounts import write_id_maps  # loaded by prepare()

            uids = self.spec.uid_mappings or [(0, self.base, RANGE)]
            return write_id_maps(helper, uids, self.spec.gid_mappings or uids)
        finally:
            os.close(hold_w)
            self._helper = helper  # reaped after the mounts (see _reap_helper)

    def _reap_helper(self) -> None:
        if self._helper:
            _reap(self._helper)
            self._helper = 0

    def _set_rlimits(self) -> None:
        if not self.spec.rlimits:
            return
        import resource

        for rl in self.spec.rlimits:
            res = getattr(resource, "RLIMIT_" + rl.name.upper())
            try:
                resource.setrlimit(res, (rl.soft, rl.hard))
            except (OSError, ValueError) as e:
                cur = resource.getrlimit(res)
                raise JailerError(
                    f"cannot set rlimit {rl.name}={rl.soft}:{rl.hard} "
                    f"(current soft:hard {cur[0]}:{cur[1]}): {e}",
                    stage="rlimits", errno=getattr(e, "errno", 0) or 1) from None

    def _container_init(self, w_up: int, root: int | None) -> None:
        """The container's first process: finish setup, then exec the workload."""
        spec = self.spec
        stage = "setup"
        init: str | int = "/dev/init"
        started = -1  # OCI, once `jailer create` returned: `jailer start`'s end of the fifo
        try:
            if root is None:  # chroot level: no mounts, so run the init from an open fd
                stage = "rlimits"
                self._set_rlimits()
                if spec.init:
                    init = os.open(self.init_path, os.O_RDONLY | os.O_CLOEXEC)
                stage = "terminal"  # from the host's devpts: the chroot has no /dev
                slave = self._open_pty(None, w_up) if spec.tty else -1
                stage = "chroot"
                os.chroot(spec.rootfs)
                os.chdir("/")
            else:
                stage = "mounts (in namespaces)"
                if not spec.shares_mounts:
                    # pivot_root refuses a locked mount (one made before the user namespace):
                    # put a recursive copy of the root on top of it, owned by this namespace.
                    tree = self.sys.open_tree("", S.OPEN_TREE_CLONE | S.OPEN_TREE_CLOEXEC
                                              | S.AT_RECURSIVE, dfd=root)
                    self.sys.move_mount(tree, "", to_dfd=root)
                    os.close(root)
                    root = tree
                from jailer.engine.mounts import Facts, Mounter, fill_in

                m = Mounter(self.sys, spec.rootfs, root_fd=root, stage_fd=self._stage_fd)
                m.apply(fill_in(spec.ns_plan, Facts(cgroup_dirs=self._cgroup_dirs(),
                                                    staged=self._stage_fd >= 0)))
                m.close()  # (the staged mounts: the root fd stays open)
                if ("uts" in spec.namespaces or "uts" in spec.ns_paths) and spec.hostname:
                    stage = "hostname"
                    self.sys.sethostname(spec.hostname)
                if "net" in spec.namespaces and spec.loopback:
                    stage = "network"
                    self.sys.loopback_up()
                if self.opts.on_mounted is not None:
                    stage = "create hooks"
                    self._wait_for_mounted_hooks(w_up)
            if root is not None:
                stage = "terminal"
                slave = self._open_pty(m, w_up) if spec.tty else -1
                stage = "chroot" if spec.shares_mounts else "pivot_root"
                self._enter_root(root)
                if spec.rootfs_propagation:  # pivot_root refuses a shared root: set it now
                    stage = "rootfs propagation"
                    self.sys.mount(None, "/", None, spec.rootfs_propagation)
            stage = "workdir"
            _enter_session(spec, slave)
            stage = "exec"
            if spec.init:
                path, argv = init, ["/dev/init", "--", *spec.args]
            else:  # missing, or not executable: an error of create, as runc's
                path, argv = _executable(spec.args[0], spec.env), spec.args
            if self._fifo_fd >= 0:
                stage = "wait for start"
                started = self._wait_for_start(w_up)
            if spec.hooks.get("startContainer"):
                stage = "startContainer hooks"
                _run_hooks_here(spec.hooks["startContainer"], self.hook_state or b"{}")
            stage = "process attributes"
            self._process_attributes()
            stage = "exec"
            try:  # from here on C only: see jl_final_exec
                self._final_exec(path, argv, cgroupns="cgroup" in spec.namespaces)
            except OSError as e:
                stage = e.filename
                raise OSError(e.errno, e.strerror) from None
        except BaseException as e:  # noqa: BLE001
            _report(w_up, stage, e, spec.args[0] if stage == "exec" else "", started)

    def _enter_root(self, root: int) -> None:
        """Make the directory ``root`` (an fd) this process's root: pivot_root in the
        container's own mount namespace (the old root detached); chroot in the runtime's,
        where pivot_root would move every process's root."""
        os.fchdir(root)
        os.close(root)
        if self.spec.shares_mounts:
            os.chroot(".")
        else:
            self.sys.pivot_root(".", ".")
            self.sys.umount2(".", S.MNT_DETACH)
        os.chdir("/")

    def _process_attributes(self) -> None:
        """The process's personality, scheduling and I/O priority (an OCI config's; an
        exec'd one's), set before the exec and so before the seccomp filter."""
        spec = self.spec
        if spec.personality is not None:
            self.sys.personality(spec.personality)
        if spec.scheduler is not None:
            self.sys.sched_setattr(*spec.scheduler)
        if spec.io_priority is not None:
            self.sys.ioprio_set(spec.io_priority)

    def _final_exec(self, path: str, argv: list[str], *, cgroupns: bool) -> None:
        """The last step, in C (jl_final_exec): join the cgroup, drop to the Spec's user,
        capabilities and no_new_privs, load the seccomp filter, execve. Returns only on
        failure: an OSError whose filename names the stage (``JL_STAGE_*``)."""
        spec = self.spec
        caps = None if spec.caps is None else C.mask(spec.caps)
        ambient = C.mask(spec.ambient) if spec.uid else 0
        self.sys.final_exec(path, argv, spec.env, cgroup_fds=self.cgroup_fds,
                            cgroupns=cgroupns, bpf=self.bpf or b"",
                            bpf_flags=spec.seccomp.flags if self.bpf else 0,
                            **_cred_args(spec, caps, ambient))

    def _wait_for_mounted_hooks(self, w_up: int) -> None:
        """OCI create-time hooks: tell the runtime our mounts are made and wait for its Go
        (it ran the hooks meanwhile; the Go carries the state startContainer hooks read)."""
        send(w_up, MOUNTED)
        go = recv(self._r_down)
        if go is None or go.kind != GO:
            os._exit(EXIT_RUNTIME)
        self.hook_state = go.value

    def _wait_for_start(self, w_up: int) -> int:
        """OCI create: tell the runtime we are ready, then block until `jailer start` opens
        the exec fifo for reading (runc's protocol); a byte tells it we went on. The fifo
        stays open (close-on-exec): `jailer start` reads a failure of the steps up to exec
        from it, or EOF once the workload runs. Returns the fifo's fd."""
        send(w_up, CREATED)
        os.close(w_up)  # nobody reads it any more
        msg = recv(self._r_down)  # `jailer create` recorded us (else it died: so do we)
        if msg is None or msg.kind != RECORDED:
            os._exit(EXIT_RUNTIME)
        os.close(self._r_down)
        fifo = os.open(f"/proc/self/fd/{self._fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.close(self._fifo_fd)
        self._fifo_fd = -1
        os.write(fifo, b"0")
        return fifo

    def _open_pty(self, mounter: Mounter | None, w_up: int) -> int:
        """Open a pty (inside the container's devpts when it has one); send the master up."""
        import socket  # already loaded by the runtime before fork

        if mounter is None:
            master, slave = os.openpty()
        else:
            # the devpts instance's own ptmx (char 5:2), reached without a symlink
            ptmx, path = mounter.char_dev("/dev/pts/ptmx", 5, 2)
            master = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
            os.close(ptmx)
            fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        send(w_up, PTY)
        socket.send_fds(self._sock, [b"m"], [master])
        os.close(master)
        return slave

    # ── supervision ────────────────────────────────────────────────────────────────────
    def _supervise(self) -> Result:
        from jailer.engine.supervise import Supervisor

        sup = Supervisor(self._pid, timeout=self.spec.timeout, master=self._master,
                         stdio=self.stdio,
                         killpg=not self.spec.pivot_root)
        status = sup.wait()
        code = EXIT_TIMEOUT if sup.timed_out else exit_code(status)
        result = Result(code, id=self.spec.id)
        if self.cg is not None:
            result.stats = self.cg.stats()
            result.oom_killed = bool(result.stats.oom_kill) and code == 137
        return result

    def _cgroup_dirs(self) -> dict[str, str]:
        """What /sys/fs/cgroup shows inside: {"": dir} on v2, {controller: dir} on v1."""
        if self.cg is None:
            return {}
        paths = getattr(self.cg, "paths", None)
        return dict(paths) if paths else {"": self.cg.path}


def open_ptmx(path: str) -> int:
    """The container's pty multiplexer at ``path``, only if it is char 5:2 (not a symlink,
    nor a FIFO or file that the container put there: O_NONBLOCK so a FIFO cannot hang)."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    st = os.fstat(fd)
    if not (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == os.makedev(5, 2)):
        os.close(fd)
        raise JailerError(f"{path} in the container is not the pty multiplexer (char 5:2)",
                          stage="terminal", path=path)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def _enter_session(spec: Spec, slave: int) -> None:
    """The last steps before exec of pid 1 or a joined process: its working directory, a
    session of its own, the pty as controlling terminal and stdio, the umask."""
    os.chdir(spec.cwd)
    os.setsid()
    if slave >= 0:
        fcntl.ioctl(slave, TIOCSCTTY, 0)
        for i in range(3):
            os.dup2(slave, i)
        os.close(slave)
    if spec.umask is not None:
        os.umask(spec.umask)


# the namespaces of pid 1 a createContainer hook runs in, as runc runs them from pid 1 before
# pivot_root: these first (as host root), then its pid namespace (for a child of the
# hook's process) and its user namespace, last, as the container's root
_HOOK_NS = (("mnt", S.CLONE_NEWNS), ("uts", S.CLONE_NEWUTS), ("ipc", S.CLONE_NEWIPC),
            ("net", S.CLONE_NEWNET), ("cgroup", S.CLONE_NEWCGROUP), ("pid", S.CLONE_NEWPID))


def start_hook(hook, payload: bytes, ns_of: int = 0) -> int:
    """Start one OCI hook with ``payload`` (the state JSON) on its stdin, optionally in every
    namespace of process ``ns_of`` (createContainer); return its pid (the caller waits)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(r, 0)
            os.close(w)  # (the hook's stdin ends when we close ours, not when this one goes)
            if ns_of:
                _enter_hook_namespaces(ns_of)
            os.execve(hook.path, hook.args or [hook.path],
                      dict(e.split("=", 1) for e in hook.env if "=" in e))
        except OSError as e:  # the hook's failure (exit 127) says why
            os.write(2, f"jailer: hook {hook.path}: {e.strerror or e}\n".encode())
        finally:
            os._exit(127)
    os.close(r)
    try:
        os.write(w, payload)
    except OSError:
        pass
    os.close(w)
    return pid


def _enter_hook_namespaces(ns_of: int) -> None:
    """Join the namespaces of ``ns_of`` (all opened first, through the host's /proc), then
    fork: the child goes on to exec the hook inside the pid namespace, dying with this
    process (which a timeout kills), and this process ends as the child does."""
    sys_ = S.Syscalls()  # (os.setns is Python 3.12's)
    fds = [(os.open(f"/proc/{ns_of}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC), flag)
           for kind, flag in _HOOK_NS]
    userns = -1
    if not _same(f"/proc/{ns_of}/ns/user", "/proc/self/ns/user"):
        userns = os.open(f"/proc/{ns_of}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    # its parent's pid as the child will see it (none, from inside another pid namespace)
    parent = os.getpid() if _same(f"/proc/{ns_of}/ns/pid", "/proc/self/ns/pid") else 0
    for fd, flag in fds:
        sys_.setns(fd, flag)
        os.close(fd)
    if userns >= 0:
        sys_.setns(userns, S.CLONE_NEWUSER)
        os.close(userns)
        sys_.setgroups_empty()
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    child = os.fork()
    if child == 0:
        sys_.prctl(S.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died first: reparented to the container's pid 1
            os._exit(127)
        return
    status = os.waitpid(child, 0)[1]
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _same(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` are the same file (a namespace, a root directory)."""
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)


def wait_hook(pid: int, timeout: int | None) -> int | None:
    """Wait for a hook's process: its wait status, or None once its ``timeout`` (seconds)
    ran out and it was killed. (``time`` is a built-in module: usable after pivot_root.)"""
    import time

    deadline = time.monotonic() + timeout if timeout else 0.0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return status
        if time.monotonic() >= deadline:
            _kill(pid)
            _reap(pid)
            return None
        time.sleep(0.005)


def _run_hooks_here(hooks: list, payload: bytes) -> None:
    """OCI startContainer hooks, run by pid 1 inside the container before exec (paths are
    the container's); any failure (a timeout too) stops the start."""
    for hook in hooks:
        status = wait_hook(start_hook(hook, payload), hook.timeout)
        if status is None or status:
            why = "timed out" if status is None else f"exited with {exit_code(status)}"
            raise JailerError(f"startContainer hook {hook.path} {why}", stage="hooks")


def _cred_args(spec: Spec, caps: int | None, ambient: int) -> dict:
    """final_exec's credential arguments: the jail policy's, or an OCI config's sets."""
    kw = {"caps": caps, "inheritable": ambient, "ambient": ambient, "uid": spec.uid,
          "gid": spec.gid, "groups": list(spec.groups), "nnp": spec.no_new_privs}
    if spec.cap_sets is not None:
        sets = {k: C.mask(v) for k, v in spec.cap_sets.items()}
        prm, inh = sets.get("permitted", 0), sets.get("inheritable", 0)
        # the kernel raises an ambient capability only if it is permitted and inheritable:
        # runc warns and goes on (`runc spec` asks for three it cannot have), so do we
        kw.update(caps=sets.get("bounding", 0), effective=sets.get("effective", 0),
                  permitted=prm, inheritable=inh, ambient=sets.get("ambient", 0) & prm & inh)
    return kw


def _resolve_exec(cmd: str, env: list[str]) -> str:
    """execvp's search with the container's PATH, inside the container's root."""
    if "/" in cmd:
        return cmd
    path = next((e[5:] for e in env if e.startswith("PATH=")), "/usr/bin:/bin")
    found = None
    for d in path.split(":"):
        candidate = os.path.join(d or ".", cmd)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            found = found or candidate  # execve reports EACCES, as execvp would
    return found or cmd  # execve reports ENOENT


def _report(w_up: int, stage: str, exc: BaseException, exec_path: str = "",
            started: int = -1) -> None:
    """Send a failure to the runtime and exit; runs only in a child process. ``started``
    (pid 1 of an OCI container after `jailer create` returned, when *up* is closed): the
    failure goes to the --log file the engine reads, to `jailer start` over the fifo (if it
    still listens) and to the container's stderr."""
    if isinstance(exc, OSError) and stage == "exec":  # 127 not found, 126 cannot execute
        exc.filename = exec_path
        err = JailerError.from_oserror(stage, exc, exit_code=EXIT_NOTFOUND
                                       if exc.errno == 2 else EXIT_NOEXEC)
    else:  # the one boundary (a library error, an OSError); a bug names its type
        err = convert(exc, stage) or JailerError(f"{type(exc).__name__}: {exc}", stage=stage)
    try:
        if started < 0:
            send(w_up, FAILED, err.to_dict())
            return
        log_line("error", str(err))
        try:
            import json  # (loaded by hold_log)

            os.write(started, json.dumps(err.to_dict()).encode())
        except OSError:  # `jailer start` is gone
            pass
        os.write(2, f"jailer: {err}\n".encode())
    except OSError:  # nobody listens: stderr is all there is
        os.write(2, f"jailer: {err}\n".encode())
    finally:
        os._exit(err.exit_code)


def _end_on_signals() -> None:
    """pid 1 of a created OCI container, until exec: every signal whose default action ends
    a process ends it (exit status 128+N). As the init of its pid namespace it would ignore
    them otherwise (the kernel drops a signal to a namespace's init that has no handler,
    SIGKILL from outside excepted), and `kill` must reach it in 'created' as in 'running'."""
    for sig in _ENDING_SIGNALS:
        signal.signal(sig, _end)


def _end(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _executable(cmd: str, env: list[str]) -> str:
    """The workload's path in the container (see ``_resolve_exec``), refused now if it is
    missing or not executable: an OSError for the exec stage (127 or 126)."""
    path = _resolve_exec(cmd, env)
    if not os.path.isfile(path):
        raise OSError(2, os.strerror(2))
    if not os.access(path, os.X_OK):
        raise OSError(13, os.strerror(13))
    return path


def _kill(pid: int) -> None:
    proc.kill(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class Join(Launch):
    """Run one more process inside a running container (``jailer exec``): join every
    namespace of its pid 1 with one setns(pidfd), its cgroup, and the same policy (caps,
    seccomp, user, no_new_privs), then exec. Processes as in ``Launch``: the runtime
    supervises, an intermediate joins and forks, the new process execs."""

    def __init__(self, spec: Spec, target: int, cgroup_procs: list[str] | None = None,
                 options: LaunchOptions | None = None, sys_: S.Syscalls | None = None) -> None:
        super().__init__(spec, options, sys_)
        self.target = target
        self.cgroup_procs = cgroup_procs or []
        self.pidfd = -1
        self.ns_flags = 0
        self.relay: dict[int, int] = {}
        self._relay_ends: list[int] = []

    def prepare(self) -> None:
        """The seccomp filter, the cgroup's procs files and a pidfd of the target."""
        if self.spec.seccomp is not None:
            from jailer.policy import seccomp

            self.bpf = seccomp.cached_bpf(self.spec.seccomp,
                                          os.path.join(self.data_dir, "seccomp"))
        self.cgroup_fds = [os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in self.cgroup_procs]
        self.pidfd = os.pidfd_open(self.target)
        self.ns_flags = self._namespace_flags()
        if self.opts.relay_stdio and not self.spec.tty:
            self._make_relay()

    def _make_relay(self) -> None:
        """Pipes in place of the caller's stdio, relayed by the runtime (as docker and
        containerd do for exec): the jail's other processes can take an exec'd process's
        fds with pidfd_getfd, and must not get the caller's terminal (TIOCSTI, its other
        sessions) or files that way."""
        caller = self.stdio
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.stdio = (in_r, out_w, err_w)
        self.relay = {out_r: caller[1], err_r: caller[2]}
        self._relay_ends = [in_r, out_w, err_w]  # the child's: closed here once it has them

        def feed() -> None:  # a thread: a process that never reads must not stall the rest
            try:
                while data := os.read(caller[0], 65536):
                    while data:
                        data = data[os.write(in_w, data):]
            except OSError:
                pass
            finally:
                os.close(in_w)

        import threading

        threading.Thread(target=feed, daemon=True).start()

    def _namespace_flags(self) -> int:
        """Every namespace of the target's pid 1 that differs from ours, whoever made it:
        the container's own and those it joined by path (a pod's network, IPC, UTS, PID
        namespaces held by its sandbox). Read after pidfd_open: if the pid was reused in
        between, setns on the pidfd of the exited process fails rather than joining it."""
        flags = 0
        for kind, flag in _NS_FILES:
            try:
                if not _same(f"/proc/{self.target}/ns/{kind}", f"/proc/self/ns/{kind}"):
                    flags |= flag
            except FileNotFoundError:  # a kernel without this kind
                continue
        return flags

    def cleanup(self) -> None:
        self._release_process()
        for fd in [*self._relay_ends, *self.relay]:  # a failed start: none of it was used
            os.close(fd)
        self._relay_ends, self.relay = [], {}
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def _child(self, w_up: int, r_down: int) -> None:
        stage = "join namespaces"
        try:
            self._child_stdio()
            self.sys.prctl(S.PR_SET_PDEATHSIG, signal.SIGKILL)
            self.sys.prctl(S.PR_SET_DUMPABLE, 0)
            flags = self.ns_flags
            if self.rootless:
                stage = "join cgroup"
                self._join_cgroup_early()
                stage = "join namespaces"
            same_root = _same(f"/proc/{self.target}/root", "/")
            self.sys.setns(self.pidfd, flags)
            if not flags & S.CLONE_NEWNS and not same_root:
                stage = "chroot"  # pid 1 shares our mount namespace but not our root
                os.chroot(f"/proc/{self.target}/root")
            if flags & S.CLONE_NEWUSER:
                self.sys.setgroups_empty()
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            pid = os.fork()
            if pid == 0:
                stage = "wait"
                go = recv(r_down)
                if go is None or go.kind != GO:
                    os._exit(EXIT_RUNTIME)
                if self.opts.subreaper:
                    self.sys.prctl(S.PR_SET_PDEATHSIG, signal.SIGKILL)
                self._exec_joined(w_up)
            send(w_up, PID, pid)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001
            _report(w_up, stage, e)

    def _exec_joined(self, w_up: int) -> None:
        spec = self.spec
        stage = "terminal"
        try:
            slave = -1
            if spec.tty:
                master = open_ptmx("/dev/pts/ptmx")
                fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
                slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
                import socket

                send(w_up, PTY)
                socket.send_fds(self._sock, [b"m"], [master])
                os.close(master)
            stage = "workdir"
            _enter_session(spec, slave)
            stage = "process attributes"  # (the config's, or those of exec's --process)
            self._process_attributes()
            stage = "exec"
            try:
                self._final_exec(_resolve_exec(spec.args[0], spec.env), spec.args,
                                 cgroupns=False)
            except OSError as e:
                stage = e.filename
                raise OSError(e.errno, e.strerror) from None
        except BaseException as e:  # noqa: BLE001
            _report(w_up, stage, e, spec.args[0] if stage == "exec" else "")

    def _supervise(self) -> Result:
        from jailer.engine.supervise import Supervisor

        for fd in self._relay_ends:
            os.close(fd)
        self._relay_ends = []
        sup = Supervisor(self._pid, master=self._master, stdio=self.stdio, relay=self.relay)
        try:
            return Result(exit_code(sup.wait()), id=self.spec.id)
        finally:
            for fd in self.relay:
                os.close(fd)
            self.relay = {}
