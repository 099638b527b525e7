"""``jailer run ROOTFS CMD`` (its options come from the one table in
``jailer.frontends.cliopts``; the run itself is ``jailer.objects.runs``) and ``jailer gc``."""

from __future__ import annotations

import sys

import click

from jailer.cli.common import run_options
from jailer.objects import runs


@click.command(context_settings={"allow_interspersed_args": False})
@run_options()
@click.argument("rootfs")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def run(rootfs: str, cmd: tuple[str, ...], **opts: object) -> None:
    """Run CMD (default /bin/sh) in a new container rooted at ROOTFS.

    ROOTFS is a directory given as a path (./root, /srv/root) or the name of an image
    (jailer image ls): a bare word is always an image name. The exit status is the
    command's own; 128+N if it died of signal N; 124 on --timeout; 125 for a runtime error;
    126 if the command cannot be executed; 127 if it does not exist.
    """
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}
    sys.exit(runs.run_cli(rootfs, list(cmd), opts))


@click.command()
def gc() -> None:
    """Clean up after crashes: starts whose runtime was killed (their cgroups, upper layers,
    uid ranges, image-use records) and jails whose monitor died (network links and published
    ports too); state files are set to what is true."""
    from jailer.objects import gc as gc_mod
    from jailer.objects import lifecycle

    for line in [*lifecycle.collect(), *gc_mod.collect()]:
        click.echo(line)
