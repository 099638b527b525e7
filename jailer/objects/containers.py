"""What only OCI containers (runtime-spec runtime.md) do: create, start, delete, run, their
hooks, the spec of an exec and its detached form, runc update's limits. The verbs they share
with named jails (kill, pause, ps, exec, state, ...) are ``jailer.objects.handles``'.

Same engine as named jails: a bundle's config.json becomes a ``Spec``
(``jailer.frontends.ociconfig``) and starts through ``Launch``; state lives beside the
jails' (``<root>/<id>/state.json``) and is checked against reality the same way. What
differs is who supervises: the engine that called ``jailer create`` (conmon,
containerd-shim) is the container's subreaper and parent, so ``create`` leaves pid 1
stopped right before exec, waiting on ``<root>/<id>/exec.fifo``, and exits; ``start``
opens the fifo and pid 1 execs; ``delete`` undoes what ``create`` made.
Errors use runc's wording, so engines and their users see the messages they know.
"""

from __future__ import annotations

import json
import os
import time

from jailer.core.errors import JailerError, warn
from jailer.core.ids import valid_id
from jailer.frontends import jaildef
from jailer.kernel import proc
from jailer.objects import state
from jailer.objects.status import CONTAINER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jailer.core.spec import Spec
    from jailer.engine.launcher import Launch

OCI_VERSION = "1.0.2"
WORK_DIR = "mounts"  # in a container's directory: see LaunchOptions.work_dir


def fail(msg: str) -> JailerError:
    return JailerError(msg, exit_code=1)


def container_dir(cid: str) -> str:
    return os.path.join(jaildef.run_dir(), cid)


def _check_id(cid: str) -> None:
    if not valid_id(cid):
        raise fail("invalid container ID format")


def _hook_state(cid: str, st: dict, status: str) -> bytes:
    return json.dumps({"ociVersion": OCI_VERSION, "id": cid, "status": status,
                       "pid": st.get("pid", 0), "bundle": st.get("bundle", ""),
                       "annotations": st.get("annotations", {})}).encode()


def run_hooks(hooks: list, payload: bytes, phase: str, *, warn_only: bool = False,
              nsenter: int = 0) -> None:
    """Run one phase's hooks in order, the state JSON on stdin; ``nsenter``: a pid whose
    namespaces the hook runs in (createContainer: every one of pid 1's)."""
    from jailer.engine.launcher import start_hook, wait_hook

    for hook in hooks:
        status = wait_hook(start_hook(hook, payload, nsenter), hook.timeout)
        if status is None or status != 0:
            why = ("timed out" if status is None
                   else f"exited with {os.waitstatus_to_exitcode(status)}")
            msg = f"{phase} hook {hook.path} {why}"
            if warn_only:  # (to the engine's --log when it gave one, as runc)
                warn(msg)
                continue
            raise fail(f"error running {phase} hook: {msg}")


# ── create ────────────────────────────────────────────────────────────────────────────────
def create(cid: str, bundle: str, *, pid_file: str | None = None,
           console_socket: str | None = None, start_now: bool = False,
           masters: list | None = None) -> dict:
    """Set the container up to the point of exec; leave it 'created'.

    In order: check the id and the bundle, claim the container's dir, record it 'creating',
    start pid 1 up to its exec (the create-time hooks run once its pid is known), hand the
    console over, record it 'created'. On any failure nothing is left: pid 1 is killed, the
    launch undone and the container's dir removed."""
    bundle, spec, raw = _load_for_create(cid, bundle, console_socket, start_now)
    cdir = _claim_container_dir(cid)
    launch = None
    st = {"pid": 0, "bundle": bundle, "annotations": spec.annotations}
    try:
        st = _record_creating(cid, cdir, bundle, spec, raw)
        launch = _new_launch(cid, cdir, spec, st)
        pid, master = launch.start_detached()
        _hand_over_console(master, spec, console_socket, masters)
        _record_created(cdir, st, launch, spec)
        if pid_file:
            _write_pid_file(pid_file, pid)
        launch.recorded()
    except BaseException:
        _undo_create(cdir, launch)
        # runtime.md: a failed create (a create-time hook's failure too) goes on at the
        # destroy step, and the poststop hooks follow it (as runc's destroy runs them)
        run_hooks(spec.hooks.get("poststop", []), _hook_state(cid, st, "stopped"),
                  "poststop", warn_only=True)
        raise
    return st


def _load_for_create(cid: str, bundle: str, console_socket: str | None,
                     start_now: bool) -> tuple[str, Spec, dict]:
    """Check the id and the bundle (runc's wording); (bundle's absolute path, its Spec with
    the default HOME, its raw config)."""
    from jailer.frontends.ociconfig import check_ns_paths, load_bundle

    _check_id(cid)
    bundle = os.path.abspath(bundle)
    if not os.path.exists(bundle):
        raise fail(f"chdir {bundle}: no such file or directory")
    if not os.path.isdir(bundle):
        raise fail(f"chdir {bundle}: not a directory")
    if os.path.exists(jaildef.definition_path(cid)) if jaildef.NAME_RE.match(cid) else False:
        raise fail("container with given ID already exists")
    spec, raw = load_bundle(bundle, cid, warn=warn)
    check_ns_paths(raw)
    _check_systemd_path(cid, spec)
    _default_home(spec)
    if spec.tty and not console_socket and not start_now:
        raise fail("cannot allocate tty if runc will detach without setting console socket")
    return bundle, spec, raw


def _claim_container_dir(cid: str) -> str:
    """Make ``<root>/<id>``: the mkdir is what makes the id ours (else "already exists").
    Root's only (0700): its exec fifo is writable by all (pid 1 opens it as the container's
    root, through an fd the runtime took), and what comes out of it is `start`'s answer."""
    cdir = container_dir(cid)
    os.makedirs(os.path.dirname(cdir), mode=0o711, exist_ok=True)
    try:
        os.mkdir(cdir, 0o700)
    except FileExistsError:
        raise fail("container with given ID already exists") from None
    return cdir


def _record_creating(cid: str, cdir: str, bundle: str, spec: Spec, raw: dict) -> dict:
    """Write the 'creating' state; make the exec fifo and save our own cgroups (the
    container's cgroup goes below them)."""
    from jailer.engine.idpool import process_owner

    st = {"id": cid, "name": cid, "kind": "container", "status": "creating", "pid": 0,
          "bundle": bundle, "rootfs": spec.rootfs, "annotations": spec.annotations,
          "created": _now_iso(), "owner": "", "monitor": process_owner(),
          "boot_id": proc.boot_id(), "ociVersion": raw.get("ociVersion", OCI_VERSION)}
    state.write(cdir, st)
    fifo = os.path.join(cdir, "exec.fifo")
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)  # (not the umask's 0600: the container's root may be another uid)
    if spec.userns:  # pid 1 opens it as the container's root: its owner (as runc)
        os.chown(fifo, _host_id(spec.uid_mappings), _host_id(spec.gid_mappings))
    with open("/proc/self/cgroup") as src:
        with open(os.path.join(cdir, "cgroup.parent"), "w") as f:
            f.write(src.read())
    return st


def _host_id(maps: list[tuple[int, int, int]]) -> int:
    """The host id that container id 0 maps to (the config's mappings cover 0)."""
    return next(host for ctr, host, _n in maps if ctr == 0)


def _new_launch(cid: str, cdir: str, spec: Spec, st: dict) -> Launch:
    """The Launch of pid 1, held at the exec fifo. Once pid 1 has made its mounts (before
    pivot_root, as runc) the prestart, createRuntime and createContainer hooks run in the
    listed order, the last in pid 1's namespaces (see run_hooks); each gets the state
    ('created') on stdin, the state that startContainer hooks will read too."""
    from jailer.engine.launcher import Launch, LaunchOptions

    def on_pid(pid: int) -> bytes | None:
        st["pid"] = pid
        return _hook_state(cid, st, "created") if spec.hooks.get("startContainer") else None

    def on_mounted(pid: int) -> bytes | None:
        payload = _hook_state(cid, st, "created")
        run_hooks(spec.hooks.get("prestart", []), payload, "prestart")
        run_hooks(spec.hooks.get("createRuntime", []), payload, "createRuntime")
        run_hooks(spec.hooks.get("createContainer", []), payload, "createContainer",
                  nsenter=pid)
        return payload if spec.hooks.get("startContainer") else None

    create_hooks = any(spec.hooks.get(k) for k in ("prestart", "createRuntime",
                                                   "createContainer"))

    cgroup_name, cgroup_root = (_cgroup_place(spec.cgroups_path) if spec.cgroups_path
                                else (None, False))
    work_dir = os.path.join(cdir, WORK_DIR)
    os.mkdir(work_dir, 0o700)
    return Launch(spec, LaunchOptions(work_dir=work_dir,
        exec_fifo=os.path.join(cdir, "exec.fifo"),
        cgroup_parent=os.path.join(cdir, "cgroup.parent"), on_pid=on_pid,
        on_mounted=on_mounted if create_hooks else None,
        record_owner=f"container:{cdir}", cgroup_name=cgroup_name, cgroup_root=cgroup_root,
        systemd_cgroup=_systemd_path(cid, spec)))


def _check_systemd_path(cid: str, spec: Spec) -> None:
    """With ``--systemd-cgroup``, a cgroupsPath the systemd driver takes, on a host it works
    on (pure cgroup v2), before anything is made: else one line."""
    path = _systemd_path(cid, spec)
    if path is not None:
        import cgroups

        try:
            cgroups.open_systemd(path, cid)
        except cgroups.CgroupError as e:
            raise fail(str(e).removeprefix("cgroups: ")) from None


def _systemd_path(cid: str, spec: Spec) -> str | None:
    """With ``--systemd-cgroup``: the config's ``slice:prefix:name`` (runc's form; empty:
    ``:jailer:ID``, the scope jailer-ID.scope in system.slice), else None (cgroupfs)."""
    if os.environ.get("JAILER_SYSTEMD_CGROUP") != "1":
        return None
    return spec.cgroups_path or f":jailer:{cid}"


def _hand_over_console(master: int, spec: Spec, console_socket: str | None,
                       masters: list | None) -> None:
    """The pty master (if any) to the console socket, or to ``masters`` for a foreground
    ``run`` that relays it itself."""
    if master >= 0 and masters is not None and not console_socket:
        masters.append(master)
    elif master >= 0:
        _send_console(master, console_socket, spec.console_size)


def _record_created(cdir: str, st: dict, launch: Launch, spec: Spec) -> None:
    """Write the 'created' state: pid 1 (with its start time), its cgroup, and
    the hooks still to run (poststart, poststop)."""
    cg, pid = launch.cgroup, launch.pid
    st.update(status="created", pid=pid, pid_start=proc.start_time(pid),
              cgroup=launch.cgroup_record if cg is not None else "",
              cgroup_root=launch.cgroup_from_root, start_id=spec.id)
    if launch.opts.systemd_cgroup is not None and cg is not None:
        st["systemd"] = launch.opts.systemd_cgroup  # reopened with the systemd driver
    st["hooks"] = {k: [{"path": h.path, "args": h.args, "env": h.env,
                        "timeout": h.timeout} for h in v]
                   for k, v in spec.hooks.items() if k in ("poststart", "poststop")}
    state.write(cdir, st)


def _undo_create(cdir: str, launch: Launch | None) -> None:
    """A failed create leaves nothing: pid 1 killed, the launch undone, the dir removed."""
    if launch is not None:
        if launch.pid:
            proc.kill(launch.pid, 9)
        launch.cleanup()
    _remove_dir(cdir)


def _remove_dir(cdir: str) -> None:
    """Remove a container's directory, once nothing is mounted on its work directory (a
    container without a mount namespace of its own has its root assembled there)."""
    from jailer.kernel.fsutil import mounted_under, remove_tree

    if mounted_under(cdir):
        from jailer.engine.mounts import detach_tree

        detach_tree(os.path.join(cdir, WORK_DIR))
        if left := mounted_under(cdir):  # never remove files through a mount
            raise fail(f"cannot remove {cdir}: {left[0]} is still mounted")
    remove_tree(cdir)


def _default_home(spec) -> None:
    """As runc: without HOME in the process env, the user's home from the rootfs's
    /etc/passwd (else /)."""
    if any(e.startswith("HOME=") for e in spec.env):
        return
    from jailer.frontends.users import home_of

    spec.env = [*spec.env, f"HOME={home_of(spec.rootfs, spec.uid)}"]


def _cgroup_place(path: str) -> tuple[str, bool]:
    """Where an OCI cgroupsPath goes: (name, from the root). An absolute path is taken from
    each hierarchy's root exactly, as runc and crun do and engines expect (podman's
    ``/libpod_parent/libpod-ID``, the kubelet's ``/kubepods/...``: they read the limits back
    there); a relative one is nested below the runtime's own cgroup. At delete only the leaf
    of an absolute path is removed (runc's way: the levels above it are the engine's)."""
    return path.strip("/"), path.startswith("/")


def _now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _send_console(master: int, path: str | None, size: tuple | None) -> None:
    """runtime-tools' console socket: the pty master over SCM_RIGHTS."""
    import socket

    if size:
        import fcntl
        import struct

        fcntl.ioctl(master, 0x5414, struct.pack("HHHH", size[0], size[1], 0, 0))
    if not path:
        os.close(master)
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise fail(f"failed to send the console to {path}: {e.strerror}") from None
    finally:
        os.close(master)


# ── state ─────────────────────────────────────────────────────────────────────────────────
def load(cid: str) -> dict:
    cdir = container_dir(cid)
    try:
        st = state.read(cdir) if state.valid_id(cid) else None
    except state.StateError as e:
        raise fail(f"container {cid}: {e} (delete --force removes it)") from None
    if not st or st.get("kind") != "container":
        raise fail("container does not exist")
    st = state.observe(cdir, st)
    if st["status"] == "created" and not os.path.exists(os.path.join(cdir, "exec.fifo")):
        st["status"] = "running"  # started by a start that died before saying so
    return st


def ids() -> list[str]:
    root = jaildef.run_dir()
    out = []
    for e in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        if not state.valid_id(e):
            continue
        try:
            st = state.read(os.path.join(root, e))
        except state.StateError:
            st = None  # a jail's (its own listing says so) or a broken container's
        if st and st.get("kind") == "container":
            out.append(e)
    return out


def _remove_remains(cid: str) -> None:
    """``delete --force`` of a container without a readable state: undo the starts recorded
    for its directory (their cgroups killed and removed), then remove the directory."""
    from jailer.core.paths import data_dir
    from jailer.objects import gc

    cdir = container_dir(cid)
    gc.undo_owned(data_dir(), f"container:{cdir}")
    _remove_dir(cdir)


# ── start, kill, delete ───────────────────────────────────────────────────────────────────
def start(cid: str) -> None:
    """Let pid 1 go on (open the exec fifo) and wait until the workload runs: a failure of
    the steps up to exec (startContainer hooks, user, capabilities, seccomp, execve) comes
    back over the fifo and is this verb's; EOF says the workload runs (the fifo was pid 1's
    close-on-exec fd). Then the poststart hooks run."""
    st = load(cid)
    CONTAINER.start.check(cid, st)
    cdir = container_dir(cid)
    fifo = os.path.join(cdir, "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        _let_go(fd, st)
        os.unlink(fifo)
        _wait_for_exec(fd)
    finally:
        os.close(fd)
    st = state.update(cdir, status="running")
    from jailer.core.spec import Hook

    hooks = [Hook(**h) for h in st.get("hooks", {}).get("poststart", [])]
    run_hooks(hooks, _hook_state(cid, st, "running"), "poststart", warn_only=True)


def _let_go(fd: int, st: dict) -> None:
    """The fifo is open for reading, so pid 1's open for writing returns: wait for the byte
    that says it went on."""
    import select

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # alive first, then the fifo: a pid 1 that went on and failed at once (a
        # startContainer hook) wrote its byte and its report before it died
        alive = proc.alive(st["pid"], st.get("pid_start"), st.get("boot_id"))
        if select.select([fd], [], [], 0.05 if alive else 0)[0] and os.read(fd, 1):
            return
        if not alive:
            raise fail("cannot start a container that has stopped")
    raise fail("timed out waiting for the container to start")


def _wait_for_exec(fd: int) -> None:
    """EOF once pid 1 exec'd (or died); its error (one JSON line, see
    ``jailer.engine.launcher._report``) if a step up to exec failed."""
    os.set_blocking(fd, True)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    if data:
        raise _start_error(data)


def _start_error(data: bytes) -> JailerError:
    """The JailerError pid 1 wrote to the fifo, read as plain data: only its known fields."""
    try:
        d = json.loads(data)
        fields = {k: d[k] for k in ("stage", "syscall", "path", "hint")
                  if isinstance(d.get(k), str)}
        err = JailerError(str(d["message"]), **fields,
                          errno=d["errno"] if type(d.get("errno")) is int else 0)
    except (ValueError, KeyError, TypeError):
        err = JailerError("the container's process failed before exec (unreadable report)")
    err.exit_code = 1  # runc's status for any failed verb
    return err


def delete(cid: str, force: bool = False) -> None:
    from jailer.core.paths import data_dir
    from jailer.core.spec import Hook
    from jailer.objects import gc

    try:
        st = load(cid)
    except JailerError:
        if force and valid_id(cid):  # gone, or the remains of a create killed early
            return _remove_remains(cid) if os.path.isdir(container_dir(cid)) else None
        raise
    if not force:
        CONTAINER.delete.check(cid, st)
    cdir = container_dir(cid)
    cg = state.cgroup(cdir, st)
    if st["status"] != "stopped":
        if cg is not None and cg.exists():
            if st["status"] == "paused":
                cg.thaw()
            cg.kill()
        proc.kill(st["pid"], 9)
        deadline = time.monotonic() + 5
        while proc.alive(st["pid"], st.get("pid_start"), st.get("boot_id")) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
    gc.undo_owned(data_dir(), f"container:{cdir}")  # (its start, named in st or not)
    if cg is not None and (cg.exists() or st.get("systemd")):
        # a cgroupsPath of the config's own naming: from the root (runc's place): only the
        # leaf, the parents are the engine's; nested below our own cgroup: the levels we
        # made too, once empty; a systemd scope: stopped (systemd removed it once empty)
        cg.delete(parents=not st.get("cgroup_root"))
    _remove_dir(cdir)
    # runtime.md: after the container is deleted, before delete returns
    hooks = [Hook(**h) for h in st.get("hooks", {}).get("poststop", [])]
    run_hooks(hooks, _hook_state(cid, st, "stopped"), "poststop", warn_only=True)


# ── exec ──────────────────────────────────────────────────────────────────────────────────
def read_json(path: str):
    """JSON from a file, or from stdin for "-" (as runc's --process and -r take it)."""
    if path == "-":
        import sys

        return json.load(sys.stdin)
    with open(path) as f:
        return json.load(f)


def _apply_process(spec, obj: dict) -> None:
    """An OCI process object (exec --process FILE) over the container's spec."""
    from jailer.policy import caps as C

    if not isinstance(obj.get("args"), list) or not obj["args"]:
        raise fail("process: args must not be empty")
    spec.args = [str(a) for a in obj["args"]]
    spec.env = [str(e) for e in obj.get("env", [])]
    spec.cwd = obj.get("cwd") or "/"
    user = obj.get("user") or {}
    spec.uid, spec.gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    spec.groups = [int(g) for g in user.get("additionalGids") or []]
    spec.umask = user.get("umask", 0o022)  # (runc's default, as at create)
    spec.tty = bool(obj.get("terminal"))
    spec.no_new_privs = bool(obj.get("noNewPrivileges"))
    if "capabilities" in obj:
        try:
            spec.cap_sets = {k: frozenset(C.normalize(n) for n in v or [])
                             for k, v in obj["capabilities"].items()}
        except C.CapError as e:
            raise fail(str(e)) from None
        spec.caps = spec.cap_sets.get("bounding", frozenset())
    if obj.get("consoleSize"):
        spec.console_size = (obj["consoleSize"].get("height", 0),
                             obj["consoleSize"].get("width", 0))
    from jailer.frontends.ociconfig import ConfigError, process_scheduling

    try:
        spec.scheduler, spec.io_priority = process_scheduling(obj)
    except ConfigError as e:
        raise fail(str(e).replace("config.json: ", "", 1)) from None


def exec_spec(st: dict, cid: str, args: list[str], *, process: str | None = None,
              detach: bool = False, tty: bool = False, console_socket: str | None = None,
              env: list[str] = (), cwd: str | None = None, user: str | None = None,
              cap_add: list[str] = (), no_new_privs: bool = False):
    """runc exec's Spec: the bundle's process, or ``process`` (a JSON file), or ``args``,
    with the flags' changes."""
    from jailer.core.spec import merge_env
    from jailer.frontends.ociconfig import load_bundle
    from jailer.policy import caps as C

    spec, _raw = load_bundle(st["bundle"], cid, warn=warn)
    if process:
        try:
            obj = read_json(process)
        except (OSError, ValueError) as e:
            raise fail(f"process {process}: {e}") from None
        if not isinstance(obj, dict):
            raise fail(f"process {process}: not a JSON object")
        _apply_process(spec, obj)
    else:
        if not args:
            raise fail("exec: give a command or --process FILE")
        spec.args = list(args)
        spec.tty = tty
    if env:
        spec.env = merge_env(spec.env, list(env))
    _default_home(spec)
    if cwd:
        spec.cwd = cwd
    if user:
        u, _, g = user.partition(":")
        spec.uid, spec.gid = int(u), int(g or 0)
    if no_new_privs:
        spec.no_new_privs = True
    if cap_add:
        add = frozenset(C.normalize(c) for c in cap_add)
        sets = dict(spec.cap_sets or {})
        for k in ("bounding", "effective", "permitted"):
            sets[k] = frozenset(sets.get(k, frozenset())) | add
        spec.cap_sets = sets
    if spec.tty and detach and not console_socket:
        raise fail("cannot allocate tty if runc will detach without setting console socket")
    return spec


def exec_detached(j, *, pid_file: str | None = None, console_socket: str | None = None) -> int:
    """runc exec --detach: start the Join ``j`` (subreaper and stdio relay off) and leave it to
    the caller (conmon)."""
    try:
        j.prepare()
        j.spawn()
    finally:
        j.cleanup()
    if j.master >= 0:
        _send_console(j.master, console_socket, j.spec.console_size)
    if pid_file:
        _write_pid_file(pid_file, j.pid)
    return 0


def runc_limits(limits: dict, *, resources: str | None = None, cpu_quota=None,
                cpu_period=None, cpu_share=None, cpuset_mems=None, cpu_rt_period=None,
                cpu_rt_runtime=None, memory_reservation=None, kernel_memory=None,
                kernel_memory_tcp=None):
    """runc update's flags and -r JSON -> cgroups.Limits (what the host's cgroups cannot
    set handled as at create: see ociconfig)."""
    import cgroups
    from jailer.frontends import ociconfig as oci

    given = {k: v for k, v in limits.items() if v}
    try:
        out = cgroups.limits_from_options(**given) if given else cgroups.Limits()
        if memory_reservation:
            out.memory_low = cgroups.parse_size(memory_reservation, "--memory-reservation")
    except cgroups.CgroupError as e:
        raise fail(str(e)) from None
    if resources:
        try:
            raw = read_json(resources)
        except (OSError, ValueError) as e:
            raise fail(f"update: --resources {resources}: {e}") from None
        extra = oci.limits_from_resources(raw)
        if extra.devices is not None:  # runc applies them; here they stay as created
            warn("update: linux.resources.devices is ignored: the device cgroup is set "
                 "when the container starts")
            extra.devices = None
        for k in extra.__slots__:
            if getattr(extra, k) is not None:
                setattr(out, k, getattr(extra, k))
    for flag, name, value in (("--cpu-quota", "cpu_quota", cpu_quota),
                              ("--cpu-period", "cpu_period", cpu_period),
                              ("--cpu-rt-period", "cpu_rt_period", cpu_rt_period),
                              ("--cpu-rt-runtime", "cpu_rt_runtime", cpu_rt_runtime)):
        if value is not None:
            if not str(value).lstrip("-").isdigit():
                raise fail(f"update: {flag} {value!r}: not a number")
            setattr(out, name, int(value))
    if cpu_share is not None:
        if not str(cpu_share).isdigit():
            raise fail(f"update: --cpu-share {cpu_share!r}: not a number")
        out.cpu_shares = int(cpu_share)  # v1 writes them as given, v2 converts (as runc)
    if cpuset_mems:
        out.cpuset_mems = cpuset_mems
    for flag, value in (("--kernel-memory", kernel_memory),
                        ("--kernel-memory-tcp", kernel_memory_tcp)):
        if value:
            warn(f"update: {flag} is ignored (kernel memory limits are deprecated; runc "
                 "ignores them too)")
    oci.fit_to_host(out)
    return out


def run(cid: str, bundle: str, *, detach: bool = False, pid_file: str | None = None,
        console_socket: str | None = None) -> int:
    """runc run: create and start; without --detach wait for the exit and delete."""
    from jailer.kernel import syscalls as S

    if not detach:  # pid 1 must come back to us when the setup process exits
        S.Syscalls().prctl(S.PR_SET_CHILD_SUBREAPER, 1)
    masters: list[int] = []
    st = create(cid, bundle, pid_file=pid_file, console_socket=console_socket,
                start_now=not detach, masters=masters)
    try:
        start(cid)
    except JailerError:
        delete(cid, force=True)
        raise
    if detach:
        return 0
    from jailer.engine.launcher import exit_code
    from jailer.engine.supervise import Supervisor

    code = exit_code(Supervisor(st["pid"], master=masters[0] if masters else -1).wait())
    delete(cid, force=True)
    return code
