"""What only named jails do: create (the definition), start detached, clean up after the
exit (and restart), stop, rm, gc; and the spec of an exec. The verbs jails share with OCI
containers (kill, pause, ps, exec, update, ...) are ``jailer.objects.handles``'.

One engine: a jail's definition becomes a ``Spec`` through ``cliopts.to_spec`` (the same
conversion as ``jailer run``) and starts through ``Launch``. A detached start works like this::

    jailer start (F)            runtime (D, setsid)                         container
    ────────────────            ──────────────────                         ─────────
    lock, check, fork ────────► Launch.start_detached(), network set-up ──► pid 1 ... exec
    ◄── "ok" / error ────────── state.json: running
    exit                        execve(jailer-monitor)   pty → console.log, console.sock
                                ... pid 1 exits: <run>/NAME/exit
                                execve(python -m jailer _cleanup NAME): undo, state stopped,
                                restart if the policy says so

So each running jail costs the host one small C process (the monitor); the Python runtime
lives only while starting and cleaning up, in the same pid (which ``state.json`` names, so
``jailer gc`` knows when nobody is left to clean up).
"""

from __future__ import annotations

import os
import sys

from jailer.core import errors
from jailer.core.errors import JailerError
from jailer.frontends import jaildef
from jailer.kernel import proc
from jailer.objects import state
from jailer.objects.status import ACTIVE, JAIL

STOP_TIMEOUT = 10.0


# ── definitions ───────────────────────────────────────────────────────────────────────────
def create(name: str, source: str, command: list[str], run_opts: dict, *,
           hostname: str | None = None, net: str | None = None, ip: str | None = None,
           gateway: str | None = None, ports: list[str] = (), restart: str = "no",
           rootfs_dir: bool = False) -> dict:
    """Write a new jail definition after checking everything a start would check."""
    from jailer.engine.idpool import IdPool

    jaildef.check_name(name)
    if os.path.exists(jaildef.definition_path(name)) or os.path.exists(
            jaildef.delegated_path(name, jaildef.config_dir())):
        raise JailerError(f"jail {name} exists already", errno=17)
    if restart not in jaildef.RESTART:
        raise JailerError(f"--restart {restart!r}: choose from {', '.join(jaildef.RESTART)}")
    net = net or ("bridge" if ip or ports or gateway else "loopback")
    if net not in jaildef.NET_MODES:
        raise JailerError(f"--net {net!r}: choose from {', '.join(jaildef.NET_MODES)}")
    if net != "bridge" and (ip or ports or gateway):
        raise JailerError("--ip, --gateway and -p need --net bridge")
    d: dict = {"name": name, ("rootfs" if rootfs_dir else "image"): source,
               "hostname": hostname or name, "net": net, "restart": restart,
               "run": {k: v for k, v in run_opts.items() if v not in (None, False, [], ())}}
    if command:
        d["command"] = list(command)
    spec = build_spec(d)  # every option error surfaces here, before anything is written
    if spec.level == "chroot":
        raise JailerError("a named jail needs namespaces: use --level jail or container")
    if not command and spec.args == ["/bin/sh"] and not _image_has_command(d):
        d["command"] = list(jaildef.DEFAULT_COMMAND)
    if net == "bridge":
        from jailer.objects import network

        taken = {n: o["ip"] for n, o in _all_definitions().items() if o.get("ip")}
        bridge, subnet, gw = network.bridge_config()
        if gateway and gateway.split("/")[0] != gw.split("/")[0]:
            raise JailerError(f"--gateway {gateway}: the bridge {bridge}'s gateway is "
                              f"{gw.split('/')[0]}")
        d["ip"] = network.allocate(ip, taken, subnet)
        d["gateway"] = gw.split("/")[0]
        parsed = [network.parse_port(p) for p in ports]
        _check_port_clash(name, parsed)
        network.check_ports(parsed)
        d["ports"] = [f"{h}:{j}" for h, j in parsed]
    pool = IdPool(os.path.join(_data(), "idpool"))
    d["uid_base"] = pool.allocate(owner=f"jail:{name}")
    try:
        jaildef.save(d, new=True)
    except BaseException:
        pool.release(d["uid_base"])
        raise
    return d


def _data() -> str:
    from jailer.core import paths

    return paths.data_dir()


def _image_has_command(d: dict) -> bool:
    if not d.get("image"):
        return False
    from jailer.frontends import cliopts

    meta = cliopts.image_meta(d["image"])
    return bool(meta.get("cmd") or meta.get("entrypoint"))


def _all_definitions() -> dict[str, dict]:
    out = {}
    for n in jaildef.names():
        try:
            out[n] = jaildef.load(n)
        except JailerError:
            continue
    return out


def _check_port_clash(name: str, ports: list[tuple[int, int]]) -> None:
    seen: set[int] = set()
    for host, _ in ports:
        if host in seen:
            raise JailerError(f"host port {host} is given twice")
        seen.add(host)
    for other, d in _all_definitions().items():
        if other == name:
            continue
        for p in d.get("ports", []):
            if int(str(p).split(":")[0]) in seen:
                raise JailerError(f"host port {str(p).split(':')[0]} is published by jail "
                                  f"{other}")


def build_spec(d: dict):
    """A jail definition -> the Spec of one start (a pty, never a timeout)."""
    from jailer.frontends import cliopts

    o = cliopts.defaults()
    for k, v in d.get("run", {}).items():
        if k not in o:
            raise JailerError(f"jail {d['name']}: unknown option {k!r} in [run]")
        o[k] = v
    o["tty"], o["no_tty"], o["timeout"], o["keep"] = True, False, None, True
    o["hostname"] = d.get("hostname") or d["name"]
    source = d.get("rootfs") or d.get("image")
    if not source:
        raise JailerError(f"jail {d['name']}: the definition names no image or rootfs")
    spec = cliopts.to_spec(source, list(d.get("command") or []), o)
    spec.loopback = d.get("net", "loopback") != "none"
    if os.geteuid() != 0:  # a delegated jail: its root is its own copy, owned by its range
        spec.cow, spec.idmap, spec.packed = False, False, None
    return spec


# ── state helpers ─────────────────────────────────────────────────────────────────────────
def status(name: str) -> dict:
    """The jail's state as it is now (see ``state.observe``)."""
    st = state.observe(jaildef.jail_state_dir(name))
    st.setdefault("name", name)
    st.setdefault("status", "stopped")
    return st


# ── start ─────────────────────────────────────────────────────────────────────────────────
def start(name: str) -> dict:
    """Start the jail detached; return its state once the command runs."""
    from jailer.engine import protocol

    d = jaildef.load(name)
    sdir = jaildef.jail_state_dir(name)
    with state.Lock(sdir):
        JAIL.start.check(name, status(name))
        _undo_leftovers(name, state.read(sdir))
        spec = build_spec(d)
        if d.get("net") == "bridge" and d.get("ports"):
            from jailer.objects import network

            network.check_ports([network.parse_port(p) for p in d["ports"]], ignore_jail=name)
        if d.get("net") == "slirp":  # before anything starts: never a half-started jail
            from jailer.objects import network

            network.check_tun()
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _daemon(d, spec, w)  # never returns
        os.close(w)
        try:
            msg = protocol.recv(r)
        finally:
            os.close(r)
    if msg is None:
        raise JailerError(f"jail {name}: the runtime died while starting it", stage="start")
    if msg.kind == protocol.FAILED:
        raise JailerError.from_dict(msg.value)
    return msg.value


def _daemon(d: dict, spec, w: int) -> None:
    """The detached runtime: start the container, report, become the monitor."""
    from jailer.engine import protocol

    try:
        os.setsid()
    except OSError:  # a restart: this process leads its session already
        pass
    null = os.open("/dev/null", os.O_RDWR)
    for i in range(3):
        os.dup2(null, i)
    if null > 2:
        os.close(null)
    try:
        monitor = _launch(d, spec)
    except BaseException as e:  # noqa: BLE001 - everything must reach `jailer start`
        err = errors.convert(e, "start") or JailerError(f"{type(e).__name__}: {e}",
                                                        stage="start")
        if w >= 0:
            protocol.send(w, protocol.FAILED, err.to_dict())
        os._exit(err.exit_code)
    if w >= 0:
        protocol.send(w, protocol.STARTED, state.read(jaildef.jail_state_dir(d["name"])))
        os.close(w)
    import _signal

    # a signal arriving before the monitor has set up must wait for it, not kill it
    _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGTERM, _signal.SIGINT,
                                                _signal.SIGHUP, _signal.SIGQUIT,
                                                _signal.SIGCHLD})
    os.execv(monitor[0], monitor)


def _launch(d: dict, spec) -> list[str]:
    """Start the container (in this process, the runtime); return the monitor's argv."""
    from jailer.engine.idpool import process_owner
    from jailer.engine.initbin import monitor_binary
    from jailer.engine.launcher import Launch, LaunchOptions

    name = d["name"]
    sdir = jaildef.jail_state_dir(name)
    ddir = jaildef.jail_data_dir(name)
    os.makedirs(ddir, mode=0o700, exist_ok=True)
    for stale in ("exit", "console.sock"):
        try:
            os.unlink(os.path.join(sdir, stale))
        except FileNotFoundError:
            pass
    parent = os.path.join(sdir, "cgroup.parent")
    with open(parent, "w") as f:
        if d.get("cgroup_parent"):  # delegated: below the cgroup root made and limited
            f.write(d["cgroup_parent"])
        else:
            with open("/proc/self/cgroup") as src:
                f.write(src.read())
    monitor = monitor_binary(_data())
    st = {"name": name, "id": spec.id, "status": "creating", "pid": 0,
          "monitor": process_owner(), "boot_id": proc.boot_id(), "image": spec.image or "",
          "ip": d.get("ip", ""), "hostname": spec.hostname, "net": d.get("net", "loopback"),
          "started": state.now(), "exit_code": None, "finished": None,
          "restarts": (state.read(sdir) or {}).get("restarts", 0) if _restarting() else 0,
          "stop_requested": False, "uid_base": d.get("uid_base", 0)}
    state.write(sdir, st)
    attached = []
    keep_fds = []

    def network_up(pid: int) -> None:
        if d.get("net") not in ("bridge", "slirp"):
            return
        from jailer.objects import network

        if d["net"] == "slirp":
            return  # once the command runs (see below)
        ports = [network.parse_port(p) for p in d.get("ports", [])]
        attached.append(network.attach(pid, name, d["ip"]))
        if ports:
            network.publish(name, d["ip"], ports)

    launch = Launch(spec, LaunchOptions(
        base=d.get("uid_base", 0), gid_base=d.get("gid_base", 0),
        layer_dir=os.path.join(ddir, "layer") if spec.cow else None,
        on_pid=network_up, cgroup_parent=parent))
    try:
        pid, master = launch.start_detached()
        if d.get("net") == "slirp":
            _usermode_network(d, pid, keep_fds)
    except BaseException:
        for fd in keep_fds:
            os.close(fd)
        if attached:
            from jailer.objects import network

            network.detach(name)
        state.update(sdir, status="stopped", pid=0, finished=state.now())
        raise
    cg = launch.cgroup
    st.update(status="running", pid=pid, pid_start=proc.start_time(pid),
              cgroup=cg.name if cg is not None else "", freezer=state.freezer_file(cg),
              host_if=attached[0] if attached else "")
    state.write(sdir, st)
    argv = [monitor, "--pid", str(pid), "--dir", sdir,
            "--log", os.path.join(ddir, "console.log")]
    if master >= 0:
        os.set_inheritable(master, True)
        argv += ["--pty-fd", str(master)]
    return [*argv, "--", sys.executable, "-m", "jailer", "_cleanup", name]


def _usermode_network(d: dict, pid: int, keep_fds: list[int]) -> None:
    """slirp4netns for a delegated jail, once its command runs: only then may the user (the
    owner of its user namespace) enter the namespace; the set-up process was not dumpable.
    slirp exits when the pipe's write end closes: the monitor holds it until the end."""
    from jailer.objects import network

    r, w = os.pipe()
    os.set_inheritable(w, True)  # through the execve into the monitor
    keep_fds.append(w)
    try:
        network.start_usermode(pid, [network.parse_port(p) for p in d.get("ports", [])], r)
    finally:
        os.close(r)


def _restarting() -> bool:
    return os.environ.get("JAILER_RESTARTING") == "1"


# ── after the container ends (run by the monitor, in the runtime's pid) ──────────────────
def cleanup_after_exit(name: str) -> None:
    """Undo the start, record how it ended, and restart when the policy says so."""
    import time

    sdir = jaildef.jail_state_dir(name)
    with state.Lock(sdir):
        st = state.read(sdir) or {"name": name}
        code, when = state.read_exit(sdir)
        _undo_leftovers(name, st)
        st = state.update(sdir, status="stopped", pid=0, exit_code=code,
                          finished=when or state.now())
    try:
        d = jaildef.load(name)
    except JailerError:
        return
    policy = d.get("restart", "no")
    again = not st.get("stop_requested") and (
        policy == "always" or (policy == "on-failure" and code not in (0, None)))
    if not again:
        return
    restarts = st.get("restarts", 0) + 1
    time.sleep(min(0.1 * 2 ** min(restarts, 8), 10.0))  # back off a crash loop
    with state.Lock(sdir):
        st = state.read(sdir) or {}
        if st.get("stop_requested") or status(name)["status"] != "stopped":
            return
        state.update(sdir, restarts=restarts)
        os.environ["JAILER_RESTARTING"] = "1"
        spec = build_spec(d)
        _daemon(d, spec, -1)


def _undo_leftovers(name: str, st: dict | None) -> list[str]:
    """Remove what a start of this jail made on the host and left (after an exit or a crash):
    its cgroup, start record, image use, network. Returns one line per thing removed."""
    from jailer.objects import gc

    if not st:
        return []
    done = []
    if state.valid_id(st.get("id")):
        done += gc.undo_start(_data(), st["id"], st.get("image", ""),
                              os.path.join(jaildef.jail_state_dir(name), "cgroup.parent"))
    if st.get("net") == "bridge" or st.get("host_if"):
        from jailer.objects import network

        network.detach(name)
    return done


# ── stop, rm ──────────────────────────────────────────────────────────────────────────────
def stop(name: str, timeout: float = STOP_TIMEOUT) -> dict:
    """SIGTERM, then SIGKILL after ``timeout`` s; wait for the clean-up; return the state.
    A jail between two runs of its restart policy (its monitor waiting to start it again)
    is stopped by cancelling that restart."""
    import select

    sdir = jaildef.jail_state_dir(name)
    jaildef.load(name)
    with state.Lock(sdir):
        st = status(name)
        if st["status"] not in ACTIVE:
            if st["status"] != "stopped" or not state.monitor_alive(st):
                return st
            state.update(sdir, stop_requested=True)  # checked before the restart
            pending = True
        else:
            pending = False
            state.update(sdir, stop_requested=True)
        cg = state.cgroup(sdir, st)
        pid = st["pid"]
        try:
            pidfd = os.pidfd_open(pid) if not pending else -1
        except ProcessLookupError:
            pidfd = -1
        if pidfd >= 0:
            try:
                proc.kill(pid, 15)
                if st["status"] == "paused" and cg is not None:
                    cg.thaw()
                if not select.select([pidfd], [], [], max(timeout, 0))[0]:
                    if cg is not None:
                        cg.kill()
                    else:
                        proc.kill(pid, 9)
                    select.select([pidfd], [], [], 5)
            finally:
                os.close(pidfd)
    _wait_cleanup(name, st, until_gone=pending)
    return status(name)


def _wait_cleanup(name: str, st: dict, timeout: float = 15.0, *,
                  until_gone: bool = False) -> None:
    """Wait until the monitor has finished cleaning up after the container (``until_gone``:
    until its process has ended)."""
    import time

    deadline = time.monotonic() + timeout
    while state.monitor_alive(st) and time.monotonic() < deadline:
        cur = state.read(jaildef.jail_state_dir(name)) or {}
        if not until_gone and cur.get("status") == "stopped" \
                and cur.get("monitor") == st.get("monitor") and not cur.get("pid"):
            break
        time.sleep(0.01)


def remove(name: str, force: bool = False) -> None:
    """Delete the jail: definition, persistent layer, logs, state, uid range."""
    from jailer.engine.idpool import IdPool
    from jailer.kernel.fsutil import remove_tree

    d = jaildef.load(name)
    st = status(name)
    if not force:
        JAIL.delete.check(name, st)
    if not JAIL.delete.allows(st["status"]) or (st["status"] == "stopped"
                                                and state.monitor_alive(st)):
        stop(name, timeout=0)  # (also a restart its monitor is waiting to make)
    sdir = jaildef.jail_state_dir(name)
    with state.Lock(sdir):
        _undo_leftovers(name, state.read(sdir))
        remove_tree(jaildef.jail_data_dir(name))
        if d.get("uid_base"):
            IdPool(os.path.join(_data(), "idpool")).release(d["uid_base"])
        os.unlink(jaildef.definition_path(name))
        remove_tree(sdir)


def exec_spec(name: str, cmd: list[str], *, tty: bool | None = None, env: list[str] = (),
              workdir: str | None = None, user: str | None = None):
    """The Spec of CMD run inside the jail (jexec): its definition's, with these changes."""
    from jailer.core.spec import merge_env
    from jailer.frontends import cliopts

    spec = build_spec(jaildef.load(name))
    spec.args = list(cmd)
    spec.tty = os.isatty(0) if tty is None else tty
    if user:
        spec.uid, spec.gid, _home = cliopts.parse_user(spec.rootfs, user)
    if workdir:
        if not workdir.startswith("/"):
            raise JailerError(f"--workdir {workdir!r}: must be an absolute path")
        spec.cwd = workdir
    extra = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in env]
    spec.env = merge_env(spec.env, extra)
    return spec


# ── gc ────────────────────────────────────────────────────────────────────────────────────
def collect() -> list[str]:
    """``jailer gc`` for jails: undo what dead runtimes/monitors left; fix the state files."""
    done = []
    live = set()
    for name in jaildef.names():
        sdir = jaildef.jail_state_dir(name)
        try:
            with state.Lock(sdir):
                raw = state.read(sdir)
                if not raw:
                    continue
                st = state.observe(sdir, raw)
                if st["status"] != "stopped" or state.monitor_alive(raw):
                    live.add(name)
                    continue
                if raw.get("status") != "stopped":
                    done += _undo_leftovers(name, raw)
                    state.write(sdir, {**st, "pid": 0})
                    done.append(f"jail {name}: marked stopped (its runtime was gone)")
        except OSError:
            continue
    if os.geteuid() == 0:
        try:
            from jailer.objects import network

            done += network.leftovers(live)
        except ImportError:
            pass
    return done


def check_ceiling(name: str, limits, ceiling: dict) -> None:
    """A delegated jail's user may lower its limits, never raise them above root's."""
    import cgroups

    top = cgroups.limits_from_options(**ceiling)
    for field in ("memory_max", "memory_swap", "pids_max"):
        want, cap = getattr(limits, field), getattr(top, field)
        if cap is None or cap < 0 or want is None:
            continue
        if want < 0 or want > cap:
            raise JailerError(f"jail {name}: permission denied: {field.replace('_', ' ')} "
                              f"above the {cap} root set when delegating it (ask root)",
                              errno=13)
    if top.cpu_quota and top.cpu_quota > 0 and limits.cpu_quota is not None and (
            limits.cpu_quota < 0 or limits.cpu_quota / limits.cpu_period
            > top.cpu_quota / top.cpu_period):
        raise JailerError(f"jail {name}: permission denied: cpus above the limit root set "
                          "when delegating it (ask root)", errno=13)
