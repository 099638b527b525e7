"""One handle for whatever a name names: ``open(name)`` gives a ``JailHandle`` (a named jail,
also one delegated to a user, as that user sees it), a ``ContainerHandle`` (an OCI container)
or, for root, a ``DelegatedJailHandle`` (a jail root handed to a user). The verbs jails and
containers share are written once here: each refreshes the status, checks the verb's guard
(``jailer.objects.status``) and acts (signals, the freezer, the cgroup's processes, limits and
counters, exec's join, the OCI state); what differs by kind is a method of the kind."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from jailer.core.errors import JailerError
from jailer.frontends import jaildef
from jailer.kernel import proc
from jailer.objects import containers, lifecycle, state
from jailer.objects.status import ACTIVE, CONTAINER, JAIL, Guard, Guards, Status

NOT_FOUND = "container does not exist"  # runc's words, which engines know


@dataclass
class ExecOptions:
    """What ``jailer exec`` may say besides the command (the OCI ones only for containers)."""

    tty: bool | None = None
    no_tty: bool = False
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    process: str | None = None
    detach: bool = False
    pid_file: str | None = None
    console_socket: str | None = None
    cap_add: list[str] = field(default_factory=list)
    no_new_privs: bool = False


@dataclass
class Listed:
    """One line of ``jailer list``: its row, its runc-list entry, and whether it is a jail
    (``list --json`` shows jails only)."""

    row: dict
    oci: dict
    jail: bool = True


def open(name: str) -> Handle:
    """The handle of ``name``: a jail's definition first, then an OCI container's state;
    else one error: "permission denied" for root's jails seen by a user, runc's "container
    does not exist" otherwise (exit status 1 either way)."""
    if jaildef.NAME_RE.match(name or "") and os.path.exists(jaildef.definition_path(name)):
        return JailHandle(name)
    if state.valid_id(name) and os.path.isfile(
            os.path.join(containers.container_dir(name), "state.json")):
        return ContainerHandle(name)
    if os.geteuid() == 0 and jaildef.NAME_RE.match(name or ""):
        from jailer.objects import delegation

        rec = delegation.record_or_empty(name)
        if rec:
            return DelegatedJailHandle(name, rec)
    err = jaildef.not_found(name)
    raise JailerError(str(err) if err.errno == 13 else NOT_FOUND, exit_code=1)


def remove(name: str, force: bool = False, missing_ok: bool = False) -> None:
    """rm/delete ``name``; ``missing_ok`` (runc's delete --force): a container id that names
    nothing, or only the directory of a create killed before its state was written, is
    removed quietly (runc exits 0 there, and engines rely on it)."""
    try:
        handle = open(name)
    except JailerError as e:
        if not (missing_ok and str(e) == NOT_FOUND and state.valid_id(name)):
            raise
        containers.delete(name, force=True)  # (its remains, if any)
        return
    handle.remove(force)


def listing() -> list[Listed]:
    """Every jail (root's delegated ones too, as root), then every OCI container."""
    out = [JailHandle(n).listed() for n in jaildef.names()]
    if os.geteuid() == 0:
        from jailer.objects import delegation

        for name in delegation.names():
            rec = delegation.record_or_empty(name)
            out.append(DelegatedJailHandle(rec.get("name", name), rec).listed())
    return out + [ContainerHandle(c).listed() for c in containers.ids()]


def _cgroup_error(e: Exception) -> JailerError:
    return JailerError(str(e), exit_code=1)


class Handle:
    """A jail or container by name. Subclasses give ``guards``, ``status``, ``directory``
    and the kind-specific verbs; the shared verbs are here."""

    kind = ""
    guards: Guards
    # ps's table: (row key, header, format spec), left to right
    PS_COLUMNS: tuple[tuple[str, str, str], ...] = (("pid", "PID", ">7"),
                                                    ("command", "COMMAND", ""))

    def __init__(self, name: str) -> None:
        self.name = name

    # ── what each kind says ──────────────────────────────────────────────────────────────
    @property
    def directory(self) -> str:
        """Its state directory (state.json, lock, cgroup.parent)."""
        raise NotImplementedError

    def status(self) -> dict:
        """Its state as it is now (the status checked against the kernel)."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def remove(self, force: bool = False) -> None:
        raise NotImplementedError

    def update(self, limits: dict, **runc: object) -> None:
        raise NotImplementedError

    def listed(self) -> Listed:
        raise NotImplementedError

    def _processes(self, st: dict) -> list[dict]:
        """ps's rows (host pid and command at least) of a status ``ps`` allows."""
        rows = []
        for pid in self.members(st):
            cmd = proc.cmdline(pid)
            if cmd is not None:
                rows.append({"pid": pid, "command": cmd})
        return rows

    def _check_exec(self, cmd: list[str], o: ExecOptions) -> None:
        """Refuse a bad exec before looking at the status."""

    def _exec_spec(self, st: dict, cmd: list[str], o: ExecOptions):
        raise NotImplementedError

    def _run_join(self, spec, pid: int, procs: list[str], o: ExecOptions) -> int:
        """Run exec's Join in the foreground: its exit status."""
        from jailer.engine.launcher import Join

        return Join(spec, pid, procs).run().returncode

    # ── shared ───────────────────────────────────────────────────────────────────────────
    def _checked(self, guard: Guard) -> dict:
        """Refresh the status, check the verb's guard: the state to act on."""
        st = self.status()
        guard.check(self.name, st)
        return st

    def cgroup(self, st: dict):
        """Its cgroup, reopened from what the start recorded (None without one)."""
        return state.cgroup(self.directory, st)

    def members(self, st: dict) -> list[int]:
        """Its processes: its cgroup's, else its first process (none once stopped)."""
        cg = self.cgroup(st)
        if cg is not None:
            return cg.procs()
        return [st["pid"]] if st["status"] != Status.STOPPED and st.get("pid") else []

    def kill(self, sig: int, all_: bool = False) -> None:
        """Send ``sig`` to its first process (``all_``: to each of its processes)."""
        st = self._checked(self.guards.kill_all if all_ else self.guards.kill)
        for pid in self.members(st) if all_ else [st["pid"]]:
            proc.kill(pid, sig)

    def pause(self) -> None:
        """Freeze every process (the cgroup freezer)."""
        self._freezer(self.guards.pause, frozen=True)

    def resume(self) -> None:
        self._freezer(self.guards.resume, frozen=False)

    def _freezer(self, guard: Guard, frozen: bool) -> None:
        import cgroups

        st = self._checked(guard)
        cg = guard.need_cgroup(self.name, self.cgroup(st))
        try:
            cg.freeze() if frozen else cg.thaw()
        except cgroups.CgroupError as e:
            raise _cgroup_error(e) from None

    def processes(self) -> list[dict]:
        """ps: one row per process, with the keys ``PS_COLUMNS`` names."""
        return self._processes(self._checked(self.guards.ps))

    def stats(self) -> dict:
        """Its cgroup's counters ({} for a container without a cgroup)."""
        st = self._checked(self.guards.stats)
        cg = self.guards.stats.need_cgroup(self.name, self.cgroup(st))
        return cg.stats().as_dict() if cg is not None else {}

    def _update_live(self, st: dict, limits) -> None:
        import cgroups

        cg = self.guards.update.need_cgroup(self.name, self.cgroup(st))
        try:
            cg.update(limits)
        except cgroups.CgroupError as e:
            raise _cgroup_error(e) from None

    def exec(self, cmd: list[str], o: ExecOptions | None = None) -> int:
        """Run ``cmd`` inside (every namespace, its cgroup, its policy); its exit status."""
        o = o or ExecOptions()
        self._check_exec(cmd, o)
        st = self._checked(self.guards.exec)
        spec = self._exec_spec(st, cmd, o)
        cg = self.cgroup(st)
        return self._run_join(spec, st["pid"], cg.procs_paths if cg is not None else [], o)

    def state(self) -> dict:
        """runtime.md's state object (plus runc's rootfs, created, owner)."""
        st = self.status()
        out = {"ociVersion": st.get("ociVersion", containers.OCI_VERSION), "id": self.name,
               "pid": st.get("pid", 0) if st["status"] != Status.STOPPED else 0,
               "status": st["status"], "bundle": st.get("bundle", ""),
               "rootfs": st.get("rootfs", ""), "created": st.get("created", ""),
               "owner": st.get("owner", "")}
        if st.get("annotations"):
            out["annotations"] = st["annotations"]
        return out


def _jail_oci_entry(row: dict) -> dict:
    """A jail's entry in runc's ``list --format json``."""
    return {"ociVersion": containers.OCI_VERSION, "id": row["name"], "pid": row["pid"],
            "status": row["status"], "bundle": "", "rootfs": row.get("image", ""),
            "created": "", "owner": row.get("owner", "")}


class JailHandle(Handle):
    """A named jail (its definition in this user's config dir)."""

    kind = "jail"
    guards = JAIL
    PS_COLUMNS = (("pid", "PID", ">7"), ("nspid", "JAILPID", ">7"), ("uid", "UID", ">5"),
                  ("state", "S", ""), ("command", "COMMAND", ""))

    @property
    def directory(self) -> str:
        return jaildef.jail_state_dir(self.name)

    def status(self) -> dict:
        return lifecycle.status(self.name)

    def cgroup(self, st: dict):
        """The cgroup every start of the jail makes (see ``lifecycle.jail_cgroup``), else
        the one its start recorded (a jail started before that rule)."""
        cg = lifecycle.jail_cgroup(self.name)
        return cg if cg.exists() else super().cgroup(st)

    def start(self) -> None:
        lifecycle.start(self.name)

    def remove(self, force: bool = False) -> None:
        lifecycle.remove(self.name, force)

    def _processes(self, st: dict) -> list[dict]:
        """The processes of its pid namespace, uids as seen inside."""
        base = st.get("uid_base", 0)
        rows = proc.namespace_processes(st["pid"])
        for r in rows:
            if base <= r["uid"] < base + 65536:
                r["uid"] -= base
        return rows

    def _check_exec(self, cmd: list[str], o: ExecOptions) -> None:
        if not cmd:
            raise JailerError("exec: give a command to run", exit_code=2)

    def _exec_spec(self, st: dict, cmd: list[str], o: ExecOptions):
        return lifecycle.exec_spec(self.name, cmd, tty=False if o.no_tty else o.tty,
                                   env=list(o.env), workdir=o.workdir, user=o.user)

    def update(self, limits: dict, **runc: object) -> dict:
        """Change resource limits in the definition and, when it runs, live."""
        import cgroups
        from jailer.frontends import cliopts

        if any(runc.values()):
            raise JailerError("update: for a jail use --memory, --cpus, --cpu-weight, "
                              "--cpuset-cpus, --pids, --io-weight", exit_code=1)
        given = {k: v for k, v in limits.items() if k in cliopts.RESOURCE_OPTIONS and v}
        if not given:
            raise JailerError("update: give at least one limit (e.g. --memory 64M)")
        try:
            parsed = cgroups.limits_from_options(**given)
        except cgroups.CgroupError as e:
            raise JailerError(str(e)) from None
        d = jaildef.load(self.name)
        if d.get("ceiling"):
            lifecycle.check_ceiling(self.name, parsed, d["ceiling"])
        with state.Lock(self.directory):
            d["run"].update(given)
            lifecycle.build_spec(d)
            st = self.status()
            if st["status"] in ACTIVE:
                self._update_live(st, parsed)
            jaildef.save(d)
        return d

    def listed(self) -> Listed:
        """Like jls: name, state, pid, ip, hostname, image, memory, uptime."""
        st = self.status()
        try:
            d = jaildef.load(self.name)
        except JailerError:
            d = {}
        row = {"name": self.name, "status": st["status"], "pid": st.get("pid") or 0,
               "ip": d.get("ip", ""), "hostname": d.get("hostname", self.name),
               "image": d.get("image") or d.get("rootfs", ""), "memory": None,
               "uptime": None, "exit_code": st.get("exit_code"),
               "restarts": st.get("restarts", 0)}
        if st["status"] in ACTIVE:
            import time

            row["uptime"] = round(time.time() - st.get("started", time.time()), 1)
            try:
                cg = self.cgroup(st)
                if cg is not None:
                    row["memory"] = cg.stats().memory_current
            except Exception:  # noqa: BLE001 - a listing must not fail on one jail
                pass
        else:
            row["pid"] = 0
        return Listed(row, _jail_oci_entry(row))


class DelegatedJailHandle(Handle):
    """Root's view of a jail it handed to a user: listed, its state read as untrusted
    (``delegation.observe_user_state``); removed only by taking it back first."""

    kind = "delegated"
    guards = JAIL

    def __init__(self, name: str, record: dict) -> None:
        super().__init__(name)
        self.record = record
        self.user = record.get("user", "?")

    def status(self) -> dict:
        from jailer.objects import delegation

        if not self.record.get("cgroup"):
            return {"status": "stopped"}
        return delegation.observe_user_state(self.record)

    def remove(self, force: bool = False) -> None:
        """Without ``force``, refuse (one line, nothing changed); with it, take the jail
        back from its user (``undelegate``: stops it, removes the user's part), then
        remove it as root's."""
        from jailer.objects import delegation

        if not force:
            raise JailerError(f"jail {self.name} is delegated to {self.user}: run `jailer "
                              f"undelegate {self.name}` first (rm --force does both)",
                              exit_code=1)
        delegation.undelegate(self.name)
        lifecycle.remove(self.name, force=True)

    def _theirs(self, *_args: object, **_kw: object):
        raise JailerError(f"jail {self.name} is delegated to {self.user}: it is theirs to "
                          f"run (`jailer undelegate {self.name}` takes it back)", exit_code=1)

    start = kill = pause = resume = processes = stats = update = exec = _theirs

    def listed(self) -> Listed:
        st = self.status()
        row = {"name": self.name, "status": st["status"],
               "pid": st.get("pid") or 0 if st["status"] != "stopped" else 0,
               "ip": "", "hostname": st.get("hostname", ""), "image": "",
               "memory": None, "uptime": None, "exit_code": st.get("exit_code"),
               "restarts": st.get("restarts", 0), "owner": self.record.get("user")}
        return Listed(row, _jail_oci_entry(row))


class ContainerHandle(Handle):
    """An OCI container (its state in the run dir, made by ``jailer create --bundle``)."""

    kind = "container"
    guards = CONTAINER

    @property
    def directory(self) -> str:
        return containers.container_dir(self.name)

    def status(self) -> dict:
        return containers.load(self.name)

    def start(self) -> None:
        containers.start(self.name)

    def remove(self, force: bool = False) -> None:
        containers.delete(self.name, force)

    def _exec_spec(self, st: dict, cmd: list[str], o: ExecOptions):
        return containers.exec_spec(
            st, self.name, cmd, process=o.process, detach=o.detach, tty=bool(o.tty),
            console_socket=o.console_socket, env=list(o.env), cwd=o.workdir, user=o.user,
            cap_add=list(o.cap_add), no_new_privs=o.no_new_privs)

    def _run_join(self, spec, pid: int, procs: list[str], o: ExecOptions) -> int:
        """runc exec in the foreground, or with --detach left to the caller (conmon), which
        reaps it and gives its stdio."""
        if not o.detach:
            return super()._run_join(spec, pid, procs, o)
        from jailer.engine.launcher import Join, LaunchOptions

        join = Join(spec, pid, procs, LaunchOptions(subreaper=False, relay_stdio=False))
        return containers.exec_detached(join, pid_file=o.pid_file,
                                        console_socket=o.console_socket)

    def update(self, limits: dict, **runc: object) -> None:
        """runc update: its flags and -r JSON, applied to the live cgroup."""
        parsed = containers.runc_limits(limits, **runc)
        self._update_live(self.status(), parsed)

    def listed(self) -> Listed:
        oci = self.state()
        row = {"name": self.name, "status": oci["status"], "pid": oci["pid"], "ip": "",
               "hostname": "(oci)", "memory": None, "uptime": None}
        return Listed(row, oci, jail=False)
