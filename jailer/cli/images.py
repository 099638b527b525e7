"""``jailer image build/import/ls/inspect/rm/pack/export``: the image store's verbs."""

from __future__ import annotations

import json
import sys

import click

from jailer.cli.common import fail


@click.group()
def image() -> None:
    """Build, import, list, pack and export root filesystem images."""


def image_store():
    """The image store (``$JAILER_DATA/images``, /var/lib/jailer/images, or the user's)."""
    from images.store import Store
    from jailer.core import paths

    return Store(paths.images_dir())


def image_in_use(store):
    """The in-use check ``image rm`` and ``--replace`` pass to the store: an image is in use
    while ``<image>/users/`` names a container whose runtime is alive (see jailer gc)."""
    from jailer.engine.idpool import owner_alive

    return lambda name: any(owner_alive(owner) for owner in store.users(name).values())


def image_progress():
    """A progress line on stderr when it is a terminal, else a silent reporter."""
    from images.progress import Progress, TerminalProgress

    return TerminalProgress(sys.stderr) if sys.stderr.isatty() else Progress()


def image_warner(progress, limit: int = 20):
    """Print warnings as ``jailer: warning: ...`` lines (the first ``limit`` of them)."""
    count = [0]

    def warn(msg: str) -> None:
        count[0] += 1
        if count[0] <= limit:
            progress.clear()
            click.echo(f"jailer: warning: {msg}", err=True)
        elif count[0] == limit + 1:
            progress.clear()
            click.echo("jailer: warning: (more warnings not shown)", err=True)

    return warn


def image_on_signals() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so a build's staging directory is removed."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)


def image_size(text: str) -> int:
    """``10G``, ``512M``, ``4096`` -> bytes (for --max-size)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        value = int(float(num) * units[unit])
    except ValueError:
        fail(f"--max-size {text!r}: expected a size like 512M or 10G")
    if value <= 0:
        fail(f"--max-size {text!r}: must be positive")
    return value


@image.command("build")
@click.argument("source", metavar="busybox|debian")
@click.option("--name", default=None, help="Image name (default: the source's name).")
@click.option("--replace", is_flag=True, help="Rebuild if the image exists.")
@click.option("--suite", default="bookworm", show_default=True, help="debian: the release.")
@click.option("--mirror", default=None,
              help="debian: the archive URL (default: the mirror apt uses here).")
@click.option("--variant", default="minbase", show_default=True,
              type=click.Choice(["minbase", "buildd", "default"]), help="debian: debootstrap "
              "variant.")
@click.option("--include", multiple=True, metavar="PKGS",
              help="debian: extra packages, comma-separated (repeatable).")
@click.option("--cache-dir", default=None, metavar="DIR",
              help="debian: package cache (default /var/cache/jailer/debootstrap/SUITE-ARCH).")
@click.option("--mirror-timeout", default=5.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(0.1, 300),
              help="debian: how long the mirror may take to answer the first request.")
def image_build(source: str, name: str | None, replace: bool, suite: str, mirror: str | None,
                variant: str, include: tuple[str, ...], cache_dir: str | None,
                mirror_timeout: float) -> None:
    """Build an image from SOURCE.

    busybox: from the host's busybox-static, no download. debian: debootstrap from a Debian
    mirror (needs root), e.g. jailer image build debian --suite bookworm --include curl.
    """
    from images.store import ImageError

    store = image_store()
    name = source if name is None else name
    image_on_signals()
    progress = image_progress()
    try:
        if source == "busybox":
            from images import busybox

            given = [f for f, v in (("--mirror", mirror), ("--include", include),
                                    ("--cache-dir", cache_dir)) if v]
            if given:
                fail(f"{', '.join(given)}: only for 'jailer image build debian'")
            path = busybox.build(store, name, replace=replace,
                                 in_use=image_in_use(store))
        elif source == "debian":
            from images import debian

            path = debian.build(store, name, suite=suite, mirror=mirror,
                                variant=variant, include=list(include), cache_dir=cache_dir,
                                replace=replace, in_use=image_in_use(store),
                                progress=progress, mirror_timeout=mirror_timeout)
        else:
            fail(f"unknown image source {source!r}: choose busybox or debian (to import a "
                  f"file or directory: jailer image import SOURCE --name NAME)")
    except ImageError as e:
        progress.done()
        fail(str(e))
    click.echo(path)


@image.command("import")
@click.argument("source", metavar="FILE|DIR")
@click.option("--name", required=True, help="Name of the new image.")
@click.option("--format", "kind", default="auto", show_default=True,
              type=click.Choice(["auto", "tar", "oci", "docker", "dir"]),
              help="What SOURCE is (auto: recognised from its content).")
@click.option("--ref", default=None, help="Which image of an OCI layout or docker archive "
              "that holds several (tag or name).")
@click.option("--allow-devices", is_flag=True, help="Keep device nodes of the archive.")
@click.option("--keep-setuid", is_flag=True,
              help="Keep setuid/setgid bits and file capabilities.")
@click.option("--max-size", default="64G", show_default=True, metavar="SIZE",
              help="Refuse archives that unpack to more than SIZE.")
@click.option("--max-entries", default=2_000_000, show_default=True, type=click.IntRange(1),
              help="Refuse archives with more entries.")
@click.option("--replace", is_flag=True, help="Replace an existing image of that name.")
def image_import(source: str, name: str, kind: str, ref: str | None, allow_devices: bool,
                 keep_setuid: bool, max_size: str, max_entries: int, replace: bool) -> None:
    """Import a rootfs tarball (.tar, .tar.gz, .tar.zst), an OCI image layout (directory or
    archive), a docker save archive or a directory as image NAME.

    Archives are untrusted: path escapes are refused, device nodes skipped and setuid bits
    cleared unless allowed, and size limits stop tar bombs.
    """
    from images import importer
    from images.extract import Policy
    from images.store import ImageError

    policy = Policy(allow_devices=allow_devices, keep_setuid=keep_setuid,
                    max_bytes=image_size(max_size), max_entries=max_entries)
    store = image_store()
    image_on_signals()
    progress = image_progress()
    try:
        path = importer.import_image(store, source, name, kind=kind, policy=policy, ref=ref,
                                     replace=replace, in_use=image_in_use(store),
                                     progress=progress, warn=image_warner(progress))
    except ImageError as e:
        progress.done()
        fail(str(e))
    click.echo(path)


@image.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def image_ls(as_json: bool) -> None:
    """List images in the store."""
    rows = image_store().list()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    from images.extract import human

    click.echo(f"{'NAME':<20} {'SOURCE':<8} {'ARCH':<7} {'SIZE':>10}  {'PACKED':<15} CREATED")
    for r in rows:
        packed = ",".join(sorted(r.get("packed") or {})) or "-"
        click.echo(f"{r['name']:<20} {r.get('source', ''):<8} {r.get('architecture', ''):<7} "
                   f"{human(r.get('size', 0)):>10}  {packed:<15} {r.get('created', '')}")


@image.command("inspect")
@click.argument("name")
def image_inspect(name: str) -> None:
    """Print an image's metadata as JSON (with its path and current users)."""
    from images.store import ImageError

    store = image_store()
    try:
        rootfs = store.rootfs(name)
    except ImageError as e:
        fail(str(e))
    info = {"name": name, "path": store.path(name), "rootfs": rootfs, **store.meta(name),
            "users": store.users(name)}
    click.echo(json.dumps(info, indent=1, sort_keys=True))


@image.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
def image_rm(names: tuple[str, ...]) -> None:
    """Remove images (refused while a container uses one)."""
    from images.store import ImageError

    store = image_store()
    for name in names:
        try:
            store.remove(name, in_use=image_in_use(store))
        except ImageError as e:
            fail(str(e))
        click.echo(name)


@image.command("pack")
@click.argument("name")
@click.option("--format", "fmt", required=True, type=click.Choice(["squashfs", "erofs"]),
              help="squashfs (squashfs-tools) or erofs (erofs-utils).")
def image_pack(name: str, fmt: str) -> None:
    """Pack an image into one read-only file (NAME.squashfs or NAME.erofs in the store), for
    loop-mounting as a container's lower layer."""
    from images import pack
    from images.store import ImageError

    image_on_signals()
    progress = image_progress()
    try:
        path = pack.pack(image_store(), name, fmt, progress=progress)
    except ImageError as e:
        fail(str(e))
    click.echo(path)


@image.command("export")
@click.argument("name")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Tar file to write (.tar, .tar.gz, .tar.xz, .tar.zst; - for stdout).")
def image_export(name: str, output: str) -> None:
    """Write an image's rootfs as a tar archive (numeric owners, xattrs, hardlinks)."""
    from images import pack
    from images.store import ImageError

    if output == "-" and sys.stdout.isatty():
        fail("refusing to write a tar archive to a terminal (use -o FILE)")
    image_on_signals()
    progress = image_progress()
    try:
        pack.export(image_store(), name, output, progress=progress)
    except ImageError as e:
        fail(str(e))
    if output != "-":
        click.echo(output)
