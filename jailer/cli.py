"""The ``jailer`` command line (click). ``run``'s options come from ``jailer.cliopts``."""

from __future__ import annotations

import json
import sys

import click

from jailer import cliopts


def _fail(msg: str, code: int = 125) -> None:
    click.echo(f"jailer: {msg}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jailer", prog_name="jailer")
def cli() -> None:
    """jailer: Linux containers from kernel primitives (chroot -> jail -> container)."""


def _run_options(f):
    for flags, dest, kind, metavar, help_ in reversed(cliopts.RUN_OPTIONS):
        if kind == "flag":
            f = click.option(*flags, dest, is_flag=True, help=help_)(f)
        elif kind == "multi":
            f = click.option(*flags, dest, multiple=True, metavar=metavar, help=help_)(f)
        elif kind == "float":
            f = click.option(*flags, dest, type=float, metavar=metavar, help=help_)(f)
        elif kind.startswith("choice:"):
            f = click.option(*flags, dest, type=click.Choice(kind[7:].split(",")),
                             help=help_)(f)
        else:
            f = click.option(*flags, dest, metavar=metavar, help=help_)(f)
    return f


@cli.command(context_settings={"allow_interspersed_args": False})
@_run_options
@click.argument("rootfs")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def run(rootfs: str, cmd: tuple[str, ...], **opts: object) -> None:
    """Run CMD (default /bin/sh) in a new container rooted at ROOTFS.

    ROOTFS is a directory or the name of an image (jailer image ls). The exit status is the
    command's own; 128+N if it died of signal N; 124 on --timeout; 125 for a runtime error;
    126 if the command cannot be executed; 127 if it does not exist.
    """
    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()}
    sys.exit(cliopts.run_cli(rootfs, list(cmd), opts))


@cli.command()
def gc() -> None:
    """Clean up after runtimes that were killed: stale upper layers and uid ranges."""
    from jailer import gc as gc_mod

    for line in gc_mod.collect():
        click.echo(line)


@cli.group()
def image() -> None:
    """Build and list root filesystem images."""


@image.command("build")
@click.argument("source", type=click.Choice(["busybox"]))
@click.option("--name", default=None, help="Image name (default: the source's name).")
@click.option("--replace", is_flag=True, help="Rebuild if the image exists.")
def image_build(source: str, name: str | None, replace: bool) -> None:
    """Build an image from SOURCE (busybox: from the host's busybox-static)."""
    from images import busybox
    from images.store import ImageError, Store
    from jailer import paths

    try:
        path = busybox.build(Store(paths.images_dir()), name or source, replace=replace)
    except ImageError as e:
        _fail(str(e))
    click.echo(path)


@image.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def image_ls(as_json: bool) -> None:
    """List images in the store."""
    from images.store import Store
    from jailer import paths

    rows = Store(paths.images_dir()).list()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'NAME':<20} {'SOURCE':<10} {'SIZE':>10}  CREATED")
    for r in rows:
        click.echo(f"{r['name']:<20} {r.get('source', ''):<10} {r.get('size', 0):>10}  "
                   f"{r.get('created', '')}")

