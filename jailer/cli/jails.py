"""``jailer create/start/stop/...``: the named-jail verbs (FreeBSD jail / OpenVZ style), and
the verbs they share with OCI containers (runc's forms: create --bundle, start, state, kill,
delete, exec, list, ps, pause, resume, update).

The shared verbs are one call on ``jailer.objects.handles.open(NAME)``, whatever NAME is;
the jail-only ones call ``jailer.objects.lifecycle``. Errors print one line and exit 1 (as
runc does), except ``exec``, which exits with the command's own status.
"""

from __future__ import annotations

import json
import os
import sys

import click

from jailer.cli.common import fail, guard, run_options
from jailer.core import errors
from jailer.core.errors import JailerError
from jailer.frontends import jaildef
from jailer.objects import handles, lifecycle
from jailer.objects.status import ACTIVE, Status

NOT_FOR_JAILS = jaildef.NOT_FOR_JAILS


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
              console_socket=console_socket, kind=errors.OCI)
        return
    if image and rootfs:
        fail("create: give exactly one of --image IMAGE or --rootfs DIR", 2)
    if bundle:
        fail("create: --bundle makes an OCI container; --image/--rootfs a jail", 2)
    if image and (why := jaildef.image_problem(image)):
        fail(f"create: --image {image!r}: {why}", 2)
    d = guard(lifecycle.create, name, image or os.path.abspath(rootfs), list(cmd), _opts(opts),
               hostname=hostname, net=net, ip=ip, gateway=gateway, ports=list(publish),
               restart=restart, rootfs_dir=bool(rootfs))
    click.echo(d["name"] + (f" {d['ip']}" if d.get("ip") else ""))


@click.command()
@click.argument("names", nargs=-1, required=True)
def start(names: tuple[str, ...]) -> None:
    """Start jails (detached; the console is kept by a small monitor process) or created
    OCI containers."""
    for name in names:
        guard(guard(handles.open, name).start)


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
    guard(guard(handles.open, name).kill, parse_signal(signal), all_)


@click.command()
@click.argument("name")
def pause(name: str) -> None:
    """Freeze every process of the jail or container (cgroup freezer)."""
    guard(guard(handles.open, name).pause)


@click.command()
@click.argument("name")
def resume(name: str) -> None:
    """Thaw a paused jail or container."""
    guard(guard(handles.open, name).resume)


@click.command(name="rm")
@click.option("-f", "--force", is_flag=True, help="Stop it first if it runs.")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove jails (definition, files, logs, state, uid range) or OCI containers."""
    for name in names:
        guard(handles.remove, name, force)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill it first if it runs.")
@click.argument("names", nargs=-1, required=True)
def delete(names: tuple[str, ...], force: bool) -> None:
    """Delete OCI containers (runc delete) or jails (as rm). With --force, a container that
    does not exist is no error (as runc: engines delete what may be gone already)."""
    for name in names:
        guard(handles.remove, name, force, missing_ok=force)


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
@click.option("--cpu-rt-period", metavar="USEC", help="runc: real-time period (cgroup v1).")
@click.option("--cpu-rt-runtime", metavar="USEC", help="runc: real-time runtime (cgroup v1).")
@click.option("--memory-reservation", metavar="SIZE", help="runc: soft limit (v2 memory.low).")
@click.option("--kernel-memory", metavar="SIZE", help="runc: ignored, with a warning.")
@click.option("--kernel-memory-tcp", metavar="SIZE", help="runc: ignored, with a warning.")
@click.argument("name")
def update(name: str, resources: str | None, pids_limit: str | None, blkio_weight: str | None,
           **limits: object) -> None:
    """Change resource limits live: a jail's (also kept in its definition) or an OCI
    container's (runc update)."""
    runc = {k: limits.pop(k) for k in ("cpu_quota", "cpu_period", "cpu_share", "cpuset_mems",
                                       "cpu_rt_period", "cpu_rt_runtime", "memory_reservation",
                                       "kernel_memory", "kernel_memory_tcp")}
    limits["pids"] = limits.get("pids") or pids_limit
    limits["io_weight"] = limits.get("io_weight") or blkio_weight
    guard(guard(handles.open, name).update, limits, resources=resources, **runc)


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
    h = guard(handles.open, name)
    o = handles.ExecOptions(tty=tty, no_tty=no_tty, env=list(env), workdir=workdir, user=user,
                            process=process, detach=detach, pid_file=pid_file,
                            console_socket=console_socket, cap_add=list(cap),
                            no_new_privs=no_new_privs)
    try:
        code = h.exec(list(cmd), o)
    except JailerError as e:
        fail(str(e), e.exit_code)
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
    if st["status"] not in ACTIVE:
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
        return lifecycle.status(name)["status"] not in ACTIVE | {Status.CREATING}

    try:
        con.follow(path, follow=follow, stop=stopped)
    except KeyboardInterrupt:
        pass


def _size(n: int | None) -> str:
    """Sizes in a table column: 1.5M, 744.0K, or - when unknown."""
    from jailer.core.units import human_size as size

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
    listed = guard(handles.listing)
    if fmt == "json":  # runc's list --format json
        click.echo(json.dumps([e.oci for e in listed]))
        return
    if as_json:
        click.echo(json.dumps([e.row for e in listed if e.jail], indent=1))
        return
    rows = [e.row for e in listed]
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
    h = guard(handles.open, name)
    rows = guard(h.processes)
    if fmt == "json":
        click.echo(json.dumps([r["pid"] for r in rows]))
        return
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(" ".join(format(head, spec) for _key, head, spec in h.PS_COLUMNS))
    for r in rows:
        click.echo(" ".join(format(r[key], spec) for key, _head, spec in h.PS_COLUMNS))


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("name")
def stats(name: str, as_json: bool) -> None:
    """The resource usage (cgroup counters) of a jail or container."""
    st = guard(guard(handles.open, name).stats)
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
