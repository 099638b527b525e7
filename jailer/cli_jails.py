"""``jailer create/start/stop/...``: the named-jail verbs (FreeBSD jail / OpenVZ style).

Each command is a thin shell over ``jailer.lifecycle``; errors print one line and exit 1
(as runc does), except ``exec``, which exits with the command's own status.
"""

from __future__ import annotations

import json
import sys

import click

from jailer import lifecycle
from jailer.cli import _fail, cli, run_options
from jailer.errors import JailerError

NOT_FOR_JAILS = ("timeout", "keep", "tty", "no_tty", "stats", "hostname")


def _guard(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except JailerError as e:
        _fail(str(e), e.exit_code if e.exit_code not in (125,) else 1)
    except OSError as e:
        _fail(str(JailerError.from_oserror("", e)), 1)


def _opts(opts: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}


@cli.command()
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
@run_options(exclude=NOT_FOR_JAILS)
@click.argument("name")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def create(name: str, cmd: tuple[str, ...], image: str | None, rootfs: str | None,
           hostname: str | None, net: str | None, ip: str | None, gateway: str | None,
           publish: tuple[str, ...], restart: str, **opts: object) -> None:
    """Define a named jail NAME running CMD (default: the image's command, else
    /bin/sh -c 'sleep infinity'); start it with jailer start NAME. Put CMD after '--'
    when it has options of its own: jailer create web --image busybox -- httpd -f.

    The definition is /etc/jailer/jails/NAME.toml (as root); every option of jailer run
    applies (limits, binds, policy). The jail keeps its files (an upper layer over the
    image) and its uid range until jailer rm.
    """
    if bool(image) == bool(rootfs):
        _fail("create: give exactly one of --image IMAGE or --rootfs DIR", 2)
    d = _guard(lifecycle.create, name, image or rootfs, list(cmd), _opts(opts),
               hostname=hostname, net=net, ip=ip, gateway=gateway, ports=list(publish),
               restart=restart, rootfs_dir=bool(rootfs))
    click.echo(d["name"] + (f" {d['ip']}" if d.get("ip") else ""))


@cli.command()
@click.argument("names", nargs=-1, required=True)
def start(names: tuple[str, ...]) -> None:
    """Start jails (detached; the console is kept by a small monitor process)."""
    for name in names:
        _guard(lifecycle.start, name)


@cli.command()
@click.option("-t", "--timeout", type=float, default=lifecycle.STOP_TIMEOUT, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@click.argument("names", nargs=-1, required=True)
def stop(names: tuple[str, ...], timeout: float) -> None:
    """Stop jails: SIGTERM to the command, SIGKILL to everything after --timeout."""
    for name in names:
        _guard(lifecycle.stop, name, timeout)


@cli.command()
@click.option("-t", "--timeout", type=float, default=lifecycle.STOP_TIMEOUT, show_default=True)
@click.argument("names", nargs=-1, required=True)
def restart(names: tuple[str, ...], timeout: float) -> None:
    """Stop (if running), then start jails."""
    for name in names:
        _guard(lifecycle.stop, name, timeout)
        _guard(lifecycle.start, name)


def parse_signal(text: str) -> int:
    import signal

    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        _fail(f"unknown signal {text!r}", 1)


@cli.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Signal every process of the jail.")
@click.argument("name")
@click.argument("signal", default="TERM")
def kill(name: str, signal: str, all_: bool) -> None:
    """Send SIGNAL (name or number, default TERM) to the jail's command."""
    _guard(lifecycle.kill, name, parse_signal(signal), all_)


@cli.command()
@click.argument("name")
def pause(name: str) -> None:
    """Freeze every process of the jail (cgroup freezer)."""
    _guard(lifecycle.pause, name)


@cli.command()
@click.argument("name")
def resume(name: str) -> None:
    """Thaw a paused jail."""
    _guard(lifecycle.resume, name)


@cli.command(name="rm")
@click.option("-f", "--force", is_flag=True, help="Stop it first if it runs.")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove jails: definition, files, logs, state, uid range."""
    for name in names:
        _guard(lifecycle.remove, name, force)


@cli.command()
@click.option("-m", "--memory", metavar="SIZE")
@click.option("--memory-swap", metavar="SIZE")
@click.option("--cpus", metavar="N")
@click.option("--cpu-weight", metavar="W")
@click.option("--cpuset-cpus", metavar="LIST")
@click.option("--pids", metavar="N")
@click.option("--io-weight", metavar="W")
@click.argument("name")
def update(name: str, **limits: object) -> None:
    """Change a jail's resource limits, live when it runs, and in its definition."""
    _guard(lifecycle.update, name, limits)


@cli.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("-t", "--tty", is_flag=True, default=None, help="Allocate a pty.")
@click.option("-T", "--no-tty", is_flag=True, help="Never allocate a pty.")
@click.option("-e", "--env", multiple=True, metavar="KEY[=VALUE]")
@click.option("-w", "--workdir", "--cwd", metavar="DIR")
@click.option("-u", "--user", metavar="UID[:GID]")
@click.argument("name")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(name: str, cmd: tuple[str, ...], tty: bool | None, no_tty: bool,
          env: tuple[str, ...], workdir: str | None, user: str | None) -> None:
    """Run CMD inside the running jail NAME (every namespace, its cgroup, its policy)."""
    try:
        code = lifecycle.exec_in(name, list(cmd), tty=False if no_tty else tty,
                                 env=list(env), workdir=workdir, user=user)
    except JailerError as e:
        _fail(str(e), e.exit_code)
    sys.exit(code)


@cli.command()
@click.argument("name")
def console(name: str) -> None:
    """Attach to the jail's console (its pty); Ctrl-] detaches."""
    import os

    from jailer import console as con
    from jailer import jails

    st = _guard(lifecycle.status, name)
    _guard(jails.load, name)
    if st["status"] not in ("running", "paused"):
        _fail(f"jail {name} is not running", 1)
    if os.isatty(0):
        click.echo(f"[attached to {name}; Ctrl-] detaches]\r", err=True)
    try:
        how = con.attach(os.path.join(jails.jail_state_dir(name), "console.sock"))
    except OSError as e:
        _fail(f"jail {name}: cannot reach its console: {e.strerror}", 1)
    if os.isatty(0):
        click.echo(f"\r\n[{how}]", err=True)


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.argument("name")
def logs(name: str, follow: bool) -> None:
    """Print what the jail wrote to its console."""
    import os

    from jailer import console as con
    from jailer import jails

    _guard(jails.load, name)
    path = os.path.join(jails.jail_data_dir(name), "console.log")

    def stopped() -> bool:
        return lifecycle.status(name)["status"] not in ("running", "paused", "creating")

    try:
        con.follow(path, follow=follow, stop=stopped)
    except KeyboardInterrupt:
        pass


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _uptime(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}h{s % 3600 // 60:02d}"


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="Names only.")
def list_(as_json: bool, fmt: str, quiet: bool) -> None:
    """List jails (like jls): name, state, pid, ip, hostname, memory, uptime."""
    rows = _guard(lifecycle.listing)
    if as_json or fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
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


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("name")
def ps(name: str, as_json: bool) -> None:
    """The jail's processes: host pid, pid inside, uid inside, command."""
    rows = _guard(lifecycle.processes, name)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'PID':>7} {'JAILPID':>7} {'UID':>5} S COMMAND")
    for r in rows:
        click.echo(f"{r['pid']:>7} {r['nspid']:>7} {r['uid']:>5} {r['state']} {r['command']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("name")
def stats(name: str, as_json: bool) -> None:
    """The jail's resource usage (cgroup counters)."""
    st = _guard(lifecycle.stats, name)
    if as_json:
        click.echo(json.dumps(st, indent=1))
        return
    for k, v in st.items():
        click.echo(f"{k:<20} {_size(v) if k.startswith('memory') else v}")


@cli.command()
@click.option("--to", "user", required=True, metavar="USER", help="The service user.")
@click.argument("name")
def delegate(name: str, user: str) -> None:
    """Hand the (stopped) jail NAME to USER, who can then start, stop, exec, console,
    list, logs and update it without root, within the limits set here (root only)."""
    from jailer import delegation

    _guard(delegation.delegate, name, user)


@cli.command()
@click.argument("name")
def undelegate(name: str) -> None:
    """Take a delegated jail back from its user: stop it, return its files to root and
    remove the user's definition, state, cgroup and subordinate ids (root only)."""
    from jailer import delegation

    _guard(delegation.undelegate, name)
