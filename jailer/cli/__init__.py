"""The ``jailer`` command line (click): the group with its global options and the explicit
list of commands. Each verb lives in the module of its group: ``run`` (one-shot runs, gc),
``jails`` (named jails and the verbs they share with OCI containers), ``oci`` (runc's own
verbs), ``images``, ``bench``; what they share is in ``common``."""

from __future__ import annotations

import click

from jailer.cli import bench, images, jails, oci, run


def _version(ctx: click.Context, _param: object, value: bool) -> None:
    """runc's version format: name version, commit, spec (engines parse these lines)."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    from jailer.objects.containers import OCI_VERSION

    click.echo(f"jailer version {version('jailer')}\ncommit: {_commit()}\n"
               f"spec: {OCI_VERSION}")
    ctx.exit()


def _commit() -> str:
    import os
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=2)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--version", is_flag=True, callback=_version, expose_value=False,
              is_eager=True, help="Print the version (runc's format) and exit.")
@click.option("--root", metavar="DIR",
              help="Where jail and container state lives (default /run/jailer as root).")
@click.option("--log", metavar="FILE", help="Also append errors to FILE (as runc's --log).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="Format of --log.")
@click.option("--debug", is_flag=True, help="Accepted for runc compatibility.")
@click.option("--systemd-cgroup", is_flag=True,
              help="OCI create: the container's cgroup is a transient systemd scope (its "
                   "linux.cgroupsPath is slice:prefix:name), as runc's; pure cgroup v2 only.")
def cli(root: str | None, log: str | None, log_format: str, debug: bool,
        systemd_cgroup: bool) -> None:
    """jailer: Linux containers from kernel primitives (chroot -> jail -> container).

    Named jails (create --image, start, exec, console, ...) and OCI containers (create
    --bundle, start, state, kill, delete: runc's command line, for podman, containerd and
    CRI-O) share one engine and one state directory.
    """
    import os

    if root:
        os.environ["JAILER_RUN"] = os.path.abspath(root)
    if log:
        os.environ["JAILER_LOG"] = log
        os.environ["JAILER_LOG_FORMAT"] = log_format
    if systemd_cgroup:  # read by OCI create; the other verbs go by the container's state
        os.environ["JAILER_SYSTEMD_CGROUP"] = "1"



COMMANDS = [run.run, jails.create, jails.start, jails.stop, jails.restart, jails.kill,
            jails.pause, jails.resume, jails.rm, jails.delete, jails.update, jails.exec_,
            jails.console, jails.logs, jails.list_, jails.ps, jails.stats, jails.delegate,
            jails.undelegate, oci.state, oci.events, oci.features, oci.spec_, run.gc,
            images.image, bench.bench]
for _command in COMMANDS:
    cli.add_command(_command)
