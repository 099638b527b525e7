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

        taken = {n: o["ip"] for n, o in _all_definitions().items()
                 if isinstance(o.get("ip"), str) and o["ip"]}
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
    pool = _pool()
    d["uid_base"] = pool.allocate(owner=f"jail:{name}")
    try:
        jaildef.save(d, new=True)
    except BaseException:
        pool.release(d["uid_base"])
        raise
    return d


def _pool():
    """The uid pool: the one authority on which range is whose."""
    from jailer.engine.idpool import IdPool

    return IdPool(os.path.join(_data(), "idpool"))


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
        try:  # (one that breaks a rule still holds its address and ports)
            out[n] = jaildef.load(n, check=False)
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
        ports = d.get("ports")
        for p in ports if isinstance(ports, list) else ():
            host = str(p).split(":")[0]
            if host.isdigit() and int(host) in seen:
                raise JailerError(f"host port {host} is published by jail {other}")


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
    spec.id = jaildef.jail_id(d["name"])
    if os.geteuid() == 0 or d.get("cgroup_parent"):
        spec.cgroup = True  # what tells, whatever the state file says, that it runs
    spec.loopback = d.get("net", "loopback") != "none"
    if os.geteuid() != 0:  # a delegated jail: its root is its own copy, owned by its range
        spec.cow, spec.idmap, spec.packed = False, False, None
    return spec


# ── state helpers ─────────────────────────────────────────────────────────────────────────
def status(name: str, *, warn: bool = True) -> dict:
    """The jail's state as it is now: the state file checked against the kernel. The jail
    runs when its cgroup holds processes, whatever the file says; a file that cannot be
    read is reported (one line, with ``warn``) and the state rebuilt from the kernel."""
    sdir = jaildef.jail_state_dir(name)
    try:
        st = state.observe(sdir)
    except state.StateError as e:
        if warn and name not in _WARNED:
            _WARNED.add(name)
            errors.say(f"jail {name}: {e}; rebuilt from what the kernel shows")
        st = {"status": "stopped", "pid": 0}
    st["name"] = name
    cg = jail_cgroup(name)
    members = _members(cg)
    if members and st["status"] not in ACTIVE:  # the file is wrong: it runs
        init = _init_of(members)
        st.update(status="paused" if state.frozen(state.freezer_file(cg)) else "running",
                  pid=init, pid_start=proc.start_time(init) if init else None,
                  boot_id=proc.boot_id(), cgroup=cg.name)
    elif not members and st["status"] in ACTIVE and st.get("cgroup") == cg.name:
        st["status"] = "stopped"  # its cgroup is empty: the pid check raced the exit
    return st


def _recorded(sdir: str) -> dict | None:
    """The state file as written (None if missing or unreadable: see ``status``)."""
    try:
        return state.read(sdir)
    except state.StateError:
        return None


_WARNED: set[str] = set()  # jails whose bad state file this command has reported


def jail_cgroup(name: str):
    """The cgroup every start of jail ``name`` makes (it may not exist): below the cgroups
    its start saved, else below ours."""
    import cgroups

    parent = os.path.join(jaildef.jail_state_dir(name), "cgroup.parent")
    try:
        return cgroups.open_manager(f"jailer-{jaildef.jail_id(name)}",
                                    proc_cgroup=parent if os.path.isfile(parent) else
                                    "/proc/self/cgroup")
    except cgroups.CgroupError:  # a cgroup.parent that names no cgroup of ours
        return cgroups.open_manager(f"jailer-{jaildef.jail_id(name)}")


def _members(cg) -> list[int]:
    try:
        return cg.procs() if cg.exists() else []
    except OSError:
        return []


def _init_of(members: list[int]) -> int:
    """The jail's pid 1 among its cgroup's processes (0 if none is)."""
    for pid in members:
        if proc.ns_pid(pid) == 1:
            return pid
    return 0


# ── start ─────────────────────────────────────────────────────────────────────────────────
def start(name: str) -> dict:
    """Start the jail detached; return its state once the command runs."""
    from jailer.engine import protocol

    d = jaildef.load(name)
    sdir = jaildef.jail_state_dir(name)
    with state.Lock(sdir):
        JAIL.start.check(name, status(name))
        _undo_leftovers(name, _recorded(sdir), d.get("image", ""))
        if os.geteuid() == 0:  # (a delegated jail's range is root's, fixed at delegation)
            d["uid_base"] = _pool().claim(d.get("uid_base"), f"jail:{name}")
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
        protocol.send(w, protocol.STARTED, _recorded(jaildef.jail_state_dir(d["name"])))
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
          "restarts": (_recorded(sdir) or {}).get("restarts", 0) if _restarting() else 0,
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
        state.write(sdir, {**st, "status": "stopped", "pid": 0, "finished": state.now()})
        raise
    cg = launch.cgroup
    st.update(status="running", pid=pid, pid_start=proc.start_time(pid),
              cgroup=cg.name if cg is not None else "",
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
    try:
        d = jaildef.load(name)
    except JailerError:
        d = {}
    with state.Lock(sdir):
        st = _recorded(sdir) or {"name": name}
        code, when = state.read_exit(sdir)
        _undo_leftovers(name, st, d.get("image", ""))
        st = {**st, "status": "stopped", "pid": 0, "exit_code": code,
              "finished": when or state.now()}
        state.write(sdir, st)
    if not d:
        return
    policy = d.get("restart", "no")
    again = not st.get("stop_requested") and (
        policy == "always" or (policy == "on-failure" and code not in (0, None)))
    if not again:
        return
    restarts = st.get("restarts", 0) + 1
    time.sleep(min(0.1 * 2 ** min(restarts, 8), 10.0))  # back off a crash loop
    with state.Lock(sdir):
        st = _recorded(sdir) or {}
        if st.get("stop_requested") or status(name)["status"] != "stopped":
            return
        state.write(sdir, {**st, "restarts": restarts})
        os.environ["JAILER_RESTARTING"] = "1"
        spec = build_spec(d)
        _daemon(d, spec, -1)


def _undo_leftovers(name: str, st: dict | None, image: str = "") -> list[str]:
    """Remove what a start of this jail made on the host and left (after an exit or a crash):
    its cgroup, start record, image use, network; found from the name (every start's id is
    ``jail_id``) and from ``st``, the state file, when it could be read. Returns one line
    per thing removed. Only once the kernel says the jail does not run (see ``status``)."""
    from jailer.objects import gc

    st = st or {}
    done = []
    parent = os.path.join(jaildef.jail_state_dir(name), "cgroup.parent")
    for cid in dict.fromkeys([jaildef.jail_id(name), st.get("id")]):  # (an older start's)
        if state.valid_id(cid):
            done += gc.undo_start(_data(), cid, st.get("image") or image, parent)
    if st.get("net") == "bridge" or st.get("host_if") or not st:
        from jailer.objects import network

        if st or os.path.exists(f"/sys/class/net/{network.host_ifname(name)}"):
            network.detach(name)
    return done


# ── stop, rm ──────────────────────────────────────────────────────────────────────────────
def stop(name: str, timeout: float = STOP_TIMEOUT) -> dict:
    """SIGTERM to its pid 1, then SIGKILL to its cgroup after ``timeout`` s; wait for the
    clean-up; return the state. A jail between two runs of its restart policy (its monitor
    waiting to start it again) is stopped by cancelling that restart. A pid is signalled
    only when it is proven the jail's (its start on record, or in the jail's cgroup); the
    definition need not be readable."""
    sdir = jaildef.jail_state_dir(name)
    if not os.path.exists(jaildef.definition_path(name)):
        raise jaildef.not_found(name)
    with state.Lock(sdir):
        st = status(name)
        pending = st["status"] not in ACTIVE
        if pending and (st["status"] != "stopped" or not state.monitor_alive(st)):
            return st
        rec = _recorded(sdir)
        state.write(sdir, {**(rec or st), "stop_requested": True})  # checked before a restart
        if not pending:
            _terminate(name, st, timeout)
    _wait_cleanup(name, st, until_gone=pending)
    with state.Lock(sdir):  # nobody left to clean up (no monitor on record, or it died)
        rec = _recorded(sdir)
        if (rec is None or rec["status"] != "stopped") and not state.monitor_alive(rec or {}) \
                and status(name, warn=False)["status"] == "stopped":
            _undo_leftovers(name, rec)
            state.write(sdir, {**(rec or st), "status": "stopped", "pid": 0,
                               "finished": state.now()})
    return status(name, warn=False)


def _terminate(name: str, st: dict, timeout: float) -> None:
    """SIGTERM to the jail's pid 1, SIGKILL to its cgroup after ``timeout`` s."""
    import _signal
    import select

    cg = jail_cgroup(name)
    members = _members(cg)
    pid = st["pid"] if (state.verified(st) and (not cg.exists() or st["pid"] in members)) \
        else _init_of(members)
    try:
        pidfd = os.pidfd_open(pid) if pid > 0 else -1
    except ProcessLookupError:
        pidfd = -1
    try:
        if pidfd >= 0 and (pid in _members(cg) or state.verified(st)):
            _signal.pidfd_send_signal(pidfd, _signal.SIGTERM)  # that process, not its pid
            if st["status"] == "paused":
                cg.thaw()
            if select.select([pidfd], [], [], max(timeout, 0))[0]:
                return
        if _members(cg):
            cg.kill()
        elif pidfd >= 0:
            _signal.pidfd_send_signal(pidfd, _signal.SIGKILL)
        if pidfd >= 0:
            select.select([pidfd], [], [], 5)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _wait_cleanup(name: str, st: dict, timeout: float = 15.0, *,
                  until_gone: bool = False) -> None:
    """Wait until the monitor has finished cleaning up after the container (``until_gone``:
    until its process has ended)."""
    import time

    deadline = time.monotonic() + timeout
    while state.monitor_alive(st) and time.monotonic() < deadline:
        cur = _recorded(jaildef.jail_state_dir(name)) or {}
        if not until_gone and cur.get("status") == "stopped" \
                and cur.get("monitor") == st.get("monitor") and not cur.get("pid"):
            break
        time.sleep(0.01)


def remove(name: str, force: bool = False) -> None:
    """Delete the jail: definition, persistent layer, logs, state, uid range (whichever the
    pool says is the jail's). With ``force`` a definition that cannot be read is removed
    too, from the name alone."""
    from jailer.kernel.fsutil import remove_tree

    try:
        d = jaildef.load(name, check=False)  # (breaking a rule does not keep a jail)
    except JailerError as e:
        if not force or not os.path.exists(jaildef.definition_path(name)):
            raise
        errors.say(f"jail {name}: {e}; removing it anyway (--force)")
        d = {}
    st = status(name)
    if not force:
        JAIL.delete.check(name, st)
    if not JAIL.delete.allows(st["status"]) or (st["status"] == "stopped"
                                                and state.monitor_alive(st)):
        stop(name, timeout=0)  # (also a restart its monitor is waiting to make)
    sdir = jaildef.jail_state_dir(name)
    with state.Lock(sdir):
        _undo_leftovers(name, _recorded(sdir), d.get("image", ""))
        remove_tree(jaildef.jail_data_dir(name))
        _pool().release_owner(f"jail:{name}")
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
    """``jailer gc`` for jails: undo what dead runtimes/monitors left; fix the state files.
    Each jail on its own: a bad one is a warning line, and the others are still collected."""
    done = []
    live = set()
    for name in jaildef.names():
        try:
            if _collect_one(name, done):
                live.add(name)
        except (OSError, JailerError) as e:
            errors.say(f"jail {name}: skipped: {e}")
    if os.geteuid() == 0:
        try:
            from jailer.objects import network

            done += network.leftovers(live)
        except ImportError:
            pass
    return done


def _collect_one(name: str, done: list[str]) -> bool:
    """Collect jail ``name`` if nobody answers for it any more; True if it is live."""
    sdir = jaildef.jail_state_dir(name)
    if not os.path.isdir(sdir):
        return False
    with state.Lock(sdir, create=False):
        broken = False
        try:
            rec = state.read(sdir)
        except state.StateError as e:
            _WARNED.add(name)
            errors.say(f"jail {name}: {e}; rebuilt from what the kernel shows")
            rec, broken = None, True
        if status(name, warn=False)["status"] != "stopped" or state.monitor_alive(rec or {}):
            return True
        if broken or (rec and rec["status"] != "stopped"):
            done += _undo_leftovers(name, rec)
            state.write(sdir, {**(rec or {"name": name}), "status": "stopped", "pid": 0})
            done.append(f"jail {name}: marked stopped (its runtime was gone)")
    return False


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
