"""``jailer create/start/stop/...``: the named-jail verbs (FreeBSD jail / OpenVZ style), and
the verbs they share with OCI containers (runc's forms: create --bundle, start, state, kill,
delete, exec, list, ps, pause, resume, update).

Each command is a thin shell over ``jailer.objects.lifecycle`` (jails) or
``jailer.objects.containers`` (OCI
containers), chosen by what the name is; errors print one line and exit 1 (as runc does),
except ``exec``, which exits with the command's own status.
"""

from __future__ import annotations

import json
import os
import sys

import click

from jailer.cli.common import fail, guard, run_options
from jailer.core.errors import JailerError
from jailer.objects import lifecycle

NOT_FOR_JAILS = ("timeout", "keep", "tty", "no_tty", "stats", "hostname", "bundle", "detach",
                 "pid_file", "console_socket")


def kind_of(name: str) -> str | None:
    """"jail" (a definition exists), "container" (OCI state exists) or None."""
    from jailer.frontends import jaildef
    from jailer.objects import containers, state

    if jaildef.NAME_RE.match(name or "") and os.path.exists(jaildef.definition_path(name)):
        return "jail"
    if state.valid_id(name) and os.path.isfile(
            os.path.join(containers.container_dir(name), "state.json")):
        return "container"
    return None


def _container_or_jail(name: str) -> str:
    """Like kind_of, but a name that is neither gets the jail wording (permission denied for
    root's jails seen by a user) or runc's "container does not exist"."""
    kind = kind_of(name)
    if kind is None:
        from jailer.frontends import jaildef

        err = jaildef.not_found(name)
        if err.errno == 13:
            fail(str(err), 1)
        fail("container does not exist", 1)
    return kind


def _opts(opts: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}


@click.command()
@click.option("--image", metavar="IMAGE", help="Image to build the jail from (jailer image ls).")
@click.option("--rootfs", metavar="DIR", help="Use this directory as the jail's root instead.")
@click.option("--hostname", metavar="NAME", help="Hostname inside (default: the jail's name).")
@click.option("--net", type=click.Choice(["none", "loopback", "bridge"]),
              help="none: no network; loopback (default): lo only; bridge: a veth on "
                   "the jailer0 bridge with its own address (default when --ip or -p).")
@click.option("--ip", metavar="ADDR[/PREFIX]",
              help="Address on the bridge (default: the next free one of its subnet).")
@click.option("--gateway", metavar="ADDR", help="Default route (the bridge's own address).")
@click.option("-p", "--publish", multiple=True, metavar="HOSTPORT:JAILPORT",
              help="Publish a TCP port on the host's 127.0.0.1. Repeatable.")
@click.option("--restart", type=click.Choice(["no", "on-failure", "always"]), default="no",
              help="Restart the command when it ends (on-failure: with a non-zero status).")
@click.option("-b", "--bundle", metavar="DIR",
              help="OCI: create container NAME from this bundle (config.json + rootfs; the "
                   "default when neither --image nor --rootfs is given is the current dir).")
@click.option("--pid-file", metavar="FILE", help="OCI: write the container's pid here.")
@click.option("--console-socket", metavar="SOCKET",
              help="OCI: send the pty master of a terminal container to this unix socket.")
@click.option("--no-pivot", is_flag=True, help="OCI: accepted; jailer always pivots.")
@click.option("--no-new-keyring", is_flag=True, help="OCI: accepted (no keyring is made).")
@click.option("--preserve-fds", type=int, default=0, metavar="N",
              help="OCI: pass N more fds (3..3+N-1) to the container.")
@run_options(exclude=NOT_FOR_JAILS)
@click.argument("name")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def create(name: str, cmd: tuple[str, ...], image: str | None, rootfs: str | None,
           hostname: str | None, net: str | None, ip: str | None, gateway: str | None,
           publish: tuple[str, ...], restart: str, bundle: str | None, pid_file: str | None,
           console_socket: str | None, no_pivot: bool, no_new_keyring: bool,
           preserve_fds: int, **opts: object) -> None:
    """Define a named jail NAME running CMD (default: the image's command, else
    /bin/sh -c 'sleep infinity'); start it with jailer start NAME. Put CMD after '--'
    when it has options of its own: jailer create web --image busybox -- httpd -f.

    The definition is /etc/jailer/jails/NAME.toml (as root); every option of jailer run
    applies (limits, binds, policy). The jail keeps its files (an upper layer over the
    image) and its uid range until jailer rm.
    """
    if not image and not rootfs:  # runc's create: an OCI bundle
        from jailer.objects import containers

        if cmd:
            fail("create: an OCI container's command comes from its config.json", 1)
        if preserve_fds:
            fail("create: --preserve-fds is not supported", 1)
        guard(containers.create, name, bundle or ".", pid_file=pid_file,
               console_socket=console_socket)
        return
    if image and rootfs:
        fail("create: give exactly one of --image IMAGE or --rootfs DIR", 2)
    if bundle:
        fail("create: --bundle makes an OCI container; --image/--rootfs a jail", 2)
    d = guard(lifecycle.create, name, image or rootfs, list(cmd), _opts(opts),
               hostname=hostname, net=net, ip=ip, gateway=gateway, ports=list(publish),
               restart=restart, rootfs_dir=bool(rootfs))
    click.echo(d["name"] + (f" {d['ip']}" if d.get("ip") else ""))


@click.command()
@click.argument("names", nargs=-1, required=True)
def start(names: tuple[str, ...]) -> None:
    """Start jails (detached; the console is kept by a small monitor process) or created
    OCI containers."""
    from jailer.objects import containers

    for name in names:
        if _container_or_jail(name) == "container":
            guard(containers.start, name)
        else:
            guard(lifecycle.start, name)


@click.command()
@click.option("-t", "--timeout", type=float, default=lifecycle.STOP_TIMEOUT, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@click.argument("names", nargs=-1, required=True)
def stop(names: tuple[str, ...], timeout: float) -> None:
    """Stop jails: SIGTERM to the command, SIGKILL to everything after --timeout."""
    for name in names:
        guard(lifecycle.stop, name, timeout)


@click.command()
@click.option("-t", "--timeout", type=float, default=lifecycle.STOP_TIMEOUT, show_default=True)
@click.argument("names", nargs=-1, required=True)
def restart(names: tuple[str, ...], timeout: float) -> None:
    """Stop (if running), then start jails."""
    for name in names:
        guard(lifecycle.stop, name, timeout)
        guard(lifecycle.start, name)


def parse_signal(text: str) -> int:
    import signal

    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        fail(f"unknown signal {text!r}", 1)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Signal every process of the jail.")
@click.argument("name")
@click.argument("signal", default="TERM")
def kill(name: str, signal: str, all_: bool) -> None:
    """Send SIGNAL (name or number, default TERM) to the jail's or container's command."""
    from jailer.objects import containers

    if _container_or_jail(name) == "container":
        guard(containers.kill, name, parse_signal(signal), all_)
    else:
        guard(lifecycle.kill, name, parse_signal(signal), all_)


@click.command()
@click.argument("name")
def pause(name: str) -> None:
    """Freeze every process of the jail or container (cgroup freezer)."""
    from jailer.objects import containers

    if _container_or_jail(name) == "container":
        guard(containers.pause, name)
    else:
        guard(lifecycle.pause, name)


@click.command()
@click.argument("name")
def resume(name: str) -> None:
    """Thaw a paused jail or container."""
    from jailer.objects import containers

    if _container_or_jail(name) == "container":
        guard(containers.resume, name)
    else:
        guard(lifecycle.resume, name)


@click.command(name="rm")
@click.option("-f", "--force", is_flag=True, help="Stop it first if it runs.")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove jails (definition, files, logs, state, uid range) or OCI containers."""
    _delete(names, force)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill it first if it runs.")
@click.argument("names", nargs=-1, required=True)
def delete(names: tuple[str, ...], force: bool) -> None:
    """Delete OCI containers (runc delete) or jails (as rm)."""
    _delete(names, force)


def _delete(names: tuple[str, ...], force: bool) -> None:
    from jailer.objects import containers

    for name in names:
        if _container_or_jail(name) == "container":
            guard(containers.delete, name, force)
        else:
            guard(lifecycle.remove, name, force)


@click.command()
@click.option("-m", "--memory", metavar="SIZE")
@click.option("--memory-swap", metavar="SIZE")
@click.option("--cpus", metavar="N")
@click.option("--cpu-weight", metavar="W")
@click.option("--cpuset-cpus", metavar="LIST")
@click.option("--pids", metavar="N")
@click.option("--io-weight", metavar="W")
@click.option("-r", "--resources", metavar="FILE|-",
              help="OCI: a LinuxResources JSON object (runc update -r).")
@click.option("--pids-limit", "pids_limit", metavar="N", help="runc's name for --pids.")
@click.option("--cpu-quota", metavar="USEC", help="runc: CFS quota (with --cpu-period).")
@click.option("--cpu-period", metavar="USEC", help="runc: CFS period.")
@click.option("--cpu-share", metavar="SHARES", help="runc: cpu.shares.")
@click.option("--cpuset-mems", metavar="LIST", help="runc: memory nodes.")
@click.option("--blkio-weight", metavar="W", help="runc's name for --io-weight.")
@click.argument("name")
def update(name: str, resources: str | None, pids_limit: str | None, cpu_quota: str | None,
           cpu_period: str | None, cpu_share: str | None, cpuset_mems: str | None,
           blkio_weight: str | None, **limits: object) -> None:
    """Change resource limits live: a jail's (also kept in its definition) or an OCI
    container's (runc update)."""
    limits["pids"] = limits.get("pids") or pids_limit
    limits["io_weight"] = limits.get("io_weight") or blkio_weight
    if _container_or_jail(name) == "jail":
        if resources or cpu_quota or cpu_period or cpu_share or cpuset_mems:
            fail("update: for a jail use --memory, --cpus, --cpu-weight, --cpuset-cpus, "
                  "--pids, --io-weight", 1)
        guard(lifecycle.update, name, limits)
        return
    from jailer.objects import containers

    guard(containers.update, name, _oci_limits(resources, limits, cpu_quota, cpu_period,
                                                 cpu_share, cpuset_mems))


def _oci_limits(resources: str | None, limits: dict, quota, period, shares, mems):
    """runc update's flags and -r JSON -> cgroups.Limits."""
    import cgroups
    from jailer.frontends import ociconfig as oci

    given = {k: v for k, v in limits.items() if v}
    try:
        out = cgroups.limits_from_options(**given) if given else cgroups.Limits()
    except cgroups.CgroupError as e:
        fail(str(e), 1)
    if resources:
        from jailer.objects.containers import read_json

        try:
            raw = read_json(resources)
        except (OSError, ValueError) as e:
            fail(f"update: --resources {resources}: {e}", 1)
        try:
            extra = oci.limits_from_resources(raw)
        except JailerError as e:
            fail(str(e), 1)
        if extra.devices is not None:  # runc applies them; here they stay as created
            sys.stderr.write("jailer: update: linux.resources.devices is ignored: the device "
                             "cgroup is set when the container starts\n")
            extra.devices = None
        for k in extra.__slots__:
            if getattr(extra, k) is not None:
                setattr(out, k, getattr(extra, k))
    for flag, field, value in (("--cpu-quota", "cpu_quota", quota),
                               ("--cpu-period", "cpu_period", period)):
        if value is not None:
            if not str(value).lstrip("-").isdigit():
                fail(f"update: {flag} {value!r}: not a number", 1)
            setattr(out, field, int(value))
    if shares is not None:
        if not str(shares).isdigit():
            fail(f"update: --cpu-share {shares!r}: not a number", 1)
        out.cpu_weight = 1 + ((int(shares) - 2) * 9999) // 262142
    if mems:
        out.cpuset_mems = mems
    return out


@click.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("-t", "--tty", is_flag=True, default=None, help="Allocate a pty.")
@click.option("-T", "--no-tty", is_flag=True, help="Never allocate a pty.")
@click.option("-e", "--env", multiple=True, metavar="KEY[=VALUE]")
@click.option("-w", "--workdir", "--cwd", metavar="DIR")
@click.option("-u", "--user", metavar="UID[:GID]")
@click.option("-p", "--process", metavar="FILE", help="OCI: the process as JSON (runc exec).")
@click.option("-d", "--detach", is_flag=True, help="OCI: do not wait for the process.")
@click.option("--pid-file", metavar="FILE", help="OCI: write the process's pid here.")
@click.option("--console-socket", metavar="SOCKET", help="OCI: where to send the pty master.")
@click.option("-c", "--cap", multiple=True, metavar="CAP", help="OCI: add a capability.")
@click.option("--no-new-privs", is_flag=True, help="OCI: set no_new_privs.")
@click.option("--preserve-fds", type=int, default=0, metavar="N", help="OCI: not supported.")
@click.option("-g", "--additional-gids", multiple=True, metavar="GID", help="OCI: accepted.")
@click.option("--process-label", metavar="LABEL", help="OCI: accepted (no SELinux).")
@click.option("--apparmor", metavar="PROFILE", help="OCI: accepted (no AppArmor).")
@click.argument("name")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def exec_(name: str, cmd: tuple[str, ...], tty: bool | None, no_tty: bool,
          env: tuple[str, ...], workdir: str | None, user: str | None, process: str | None,
          detach: bool, pid_file: str | None, console_socket: str | None,
          cap: tuple[str, ...], no_new_privs: bool, preserve_fds: int,
          additional_gids: tuple[str, ...], process_label: str | None,
          apparmor: str | None) -> None:
    """Run CMD inside the running jail or container NAME (every namespace, its cgroup, its
    policy)."""
    try:
        if _container_or_jail(name) == "container":
            from jailer.objects import containers

            code = containers.exec_process(
                name, list(cmd), process=process, detach=detach, tty=bool(tty),
                pid_file=pid_file, console_socket=console_socket, env=list(env),
                cwd=workdir, user=user, cap_add=list(cap), no_new_privs=no_new_privs)
        else:
            if not cmd:
                fail("exec: give a command to run", 2)
            code = lifecycle.exec_in(name, list(cmd), tty=False if no_tty else tty,
                                     env=list(env), workdir=workdir, user=user)
    except JailerError as e:
        fail(str(e), e.exit_code if e.exit_code != 125 or detach else 125)
    sys.exit(code)


@click.command()
@click.argument("name")
def console(name: str) -> None:
    """Attach to the jail's console (its pty); Ctrl-] detaches."""
    import os

    from jailer.frontends import jaildef
    from jailer.objects import console as con

    st = guard(lifecycle.status, name)
    guard(jaildef.load, name)
    if st["status"] not in ("running", "paused"):
        fail(f"jail {name} is not running", 1)
    if os.isatty(0):
        click.echo(f"[attached to {name}; Ctrl-] detaches]\r", err=True)
    try:
        how = con.attach(os.path.join(jaildef.jail_state_dir(name), "console.sock"))
    except OSError as e:
        fail(f"jail {name}: cannot reach its console: {e.strerror}", 1)
    if os.isatty(0):
        click.echo(f"\r\n[{how}]", err=True)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.argument("name")
def logs(name: str, follow: bool) -> None:
    """Print what the jail wrote to its console."""
    import os

    from jailer.frontends import jaildef
    from jailer.objects import console as con

    guard(jaildef.load, name)
    path = os.path.join(jaildef.jail_data_dir(name), "console.log")

    def stopped() -> bool:
        return lifecycle.status(name)["status"] not in ("running", "paused", "creating")

    try:
        con.follow(path, follow=follow, stop=stopped)
    except KeyboardInterrupt:
        pass


def _size(n: int | None) -> str:
    """Sizes in a table column: 1.5M, 744.0K, or - when unknown."""
    from jailer.frontends.cliopts import _size as size

    return "-" if n is None else size(n, short=True)


def _uptime(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}h{s % 3600 // 60:02d}"


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON output (jails, as jls).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="json: runc's list (every jail and container, with its OCI state).")
@click.option("-q", "--quiet", is_flag=True, help="Names only.")
def list_(as_json: bool, fmt: str, quiet: bool) -> None:
    """List jails (like jls: name, state, pid, ip, hostname, memory, uptime) and OCI
    containers."""
    from jailer.objects import containers, delegation

    rows = guard(lifecycle.listing) + guard(delegation.listing)
    oci = [containers.oci_state(guard(containers.load, c)) for c in containers.ids()]
    if fmt == "json":  # runc's list --format json
        out = [{"ociVersion": containers.OCI_VERSION, "id": r["name"], "pid": r["pid"],
                "status": r["status"], "bundle": "", "rootfs": r.get("image", ""),
                "created": "", "owner": r.get("owner", "")} for r in rows]
        click.echo(json.dumps(out + oci))
        return
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    rows += [{"name": c["id"], "status": c["status"], "pid": c["pid"], "ip": "",
              "hostname": "(oci)", "memory": None, "uptime": None} for c in oci]
    if quiet:
        for r in rows:
            click.echo(r["name"])
        return
    fmt_row = "{:<20} {:<8} {:>7} {:<16} {:<16} {:>8} {:>7}"
    click.echo(fmt_row.format("NAME", "STATE", "PID", "IP", "HOSTNAME", "MEMORY", "UPTIME"))
    for r in rows:
        click.echo(fmt_row.format(r["name"], r["status"], r["pid"] or "-",
                                  (r["ip"] or "-").split("/")[0], r["hostname"],
                                  _size(r["memory"]), _uptime(r["uptime"])))


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--json", "as_json", is_flag=True)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="json: the host pids as a JSON array (runc ps).")
@click.argument("name")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
def ps(name: str, as_json: bool, fmt: str, ps_args: tuple[str, ...]) -> None:
    """The processes of a jail or container: host pid, pid inside, uid inside, command."""
    if _container_or_jail(name) == "container":
        from jailer.objects import containers

        pids = guard(containers.processes, name)
        if fmt == "json" or as_json:
            click.echo(json.dumps(pids))
            return
        click.echo(f"{'PID':>7} COMMAND")
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            click.echo(f"{pid:>7} {cmd}")
        return
    rows = guard(lifecycle.processes, name)
    if fmt == "json":
        click.echo(json.dumps([r["pid"] for r in rows]))
        return
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'PID':>7} {'JAILPID':>7} {'UID':>5} S COMMAND")
    for r in rows:
        click.echo(f"{r['pid']:>7} {r['nspid']:>7} {r['uid']:>5} {r['state']} {r['command']}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("name")
def stats(name: str, as_json: bool) -> None:
    """The jail's resource usage (cgroup counters)."""
    st = guard(lifecycle.stats, name)
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    for k, v in st.items():
        click.echo(f"{k:<20} {_size(v) if k.startswith('memory') else v}")


@click.command()
@click.option("--to", "user", required=True, metavar="USER", help="The service user.")
@click.argument("name")
def delegate(name: str, user: str) -> None:
    """Hand the (stopped) jail NAME to USER, who can then start, stop, exec, console,
    list, logs and update it without root, within the limits set here (root only)."""
    from jailer.objects import delegation

    guard(delegation.delegate, name, user)


@click.command()
@click.argument("name")
def undelegate(name: str) -> None:
    """Take a delegated jail back from its user: stop it, return its files to root and
    remove the user's definition, state, cgroup and subordinate ids (root only)."""
    from jailer.objects import delegation

    guard(delegation.undelegate, name)
