"""Importing the images people already have into the store.

Sources (``kind``; "auto" recognises them from content, never from the file name):

* ``tar``: a rootfs tarball, uncompressed or gzip/bzip2/xz/zstd-compressed;
* ``oci``: an OCI image layout, as a directory or a tar archive of one;
* ``docker``: a ``docker save`` archive (or its unpacked directory);
* ``dir``: a plain directory, copied (owners, modes, xattrs, hardlinks, holes kept).

Everything goes through :class:`images.extract.RootfsWriter`, so the same refusals and limits
apply to every source, and is built in the store's staging directory: a failure leaves
nothing in the store.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable

from images import oci
from images.archive import (
    READ_ERRORS,
    DirBundle,
    HashingReader,
    StrictTarInfo,
    TarBundle,
    read_error,
    sniff_file,
    tar_stream,
)
from images.extract import Policy, RootfsWriter, tar_entries
from images.progress import Progress
from images.store import ImageError, Store, check_name, host_arch
from images.tree import dir_entries, guess_arch

KINDS = ("auto", "tar", "oci", "docker", "dir")


def _readable(src: str) -> os.stat_result:
    try:
        st = os.stat(src)
        if os.path.isdir(src):
            os.listdir(src)
        else:
            open(src, "rb").close()
    except FileNotFoundError:
        raise ImageError(f"{src}: no such file or directory") from None
    except PermissionError:
        raise ImageError(f"cannot read {src}: permission denied") from None
    except OSError as e:
        raise ImageError(f"cannot read {src}: {e.strerror}") from None
    return st


def detect(src: str) -> str:
    """The kind of ``src``: "tar", "oci", "docker" or "dir" (ImageError if none)."""
    st = _readable(src)
    if os.path.isdir(src):
        if os.path.isfile(os.path.join(src, "oci-layout")):
            return "oci"
        if os.path.isfile(os.path.join(src, "manifest.json")) and not os.path.isdir(
                os.path.join(src, "etc")):
            return "docker"
        return "dir"
    if not os.path.isfile(src):
        raise ImageError(f"{src} is neither a regular file nor a directory")
    if st.st_size == 0:
        raise ImageError(f"{src} is empty")
    kind = sniff_file(src)
    if kind is None and not _is_tar(src):
        raise ImageError(f"{src} is not a tar archive (expected a rootfs .tar, .tar.gz, "
                         f".tar.zst, an OCI image layout or a docker save archive)")
    if kind == "zstd":
        return "tar"  # zstd archives are read in one pass: rootfs tarballs only
    try:
        with tarfile.open(src, "r:*", tarinfo=StrictTarInfo) as tar:
            names = {n.removeprefix("./") for n in tar.getnames()}
    except READ_ERRORS as e:
        raise ImageError(read_error(src, e, kind)) from None
    if "oci-layout" in names and "index.json" in names:
        return "oci"
    if "manifest.json" in names and not any(n.startswith("etc/") for n in names):
        return "docker"
    return "tar"


def _is_tar(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def import_image(store: Store, src: str, name: str, *, kind: str = "auto",
                 policy: Policy | None = None, ref: str | None = None, replace: bool = False,
                 in_use: Callable[[str], bool] | None = None,
                 progress: Progress | None = None,
                 warn: Callable[[str], None] | None = None) -> str:
    """Import ``src`` as image ``name``; return the image directory.

    ``policy`` sets what the archive may create (devices, setuid) and the tar-bomb limits;
    ``ref`` picks one image of an OCI layout or docker archive holding several; ``warn``
    receives one line per neutralised member (cleared setuid bit, skipped device, ...).
    """
    progress = progress or Progress()
    check_name(name)
    if kind not in KINDS:
        raise ImageError(f"unknown import format {kind!r} (choose from {', '.join(KINDS)})")
    if store.exists(name) and not replace:
        raise ImageError(f"image {name!r} already exists (remove it with: jailer image rm "
                         f"{name}, or pass --replace)")
    _readable(src)
    if kind == "auto":
        kind = detect(src)
    elif kind == "dir" and not os.path.isdir(src):
        raise ImageError(f"{src} is not a directory")
    elif kind == "tar" and os.path.isdir(src):
        raise ImageError(f"{src} is a directory, not a tar archive")
    staging = store.begin(name)
    try:
        rootfs = os.path.join(staging, "rootfs")
        with RootfsWriter(rootfs, policy, warn) as writer:
            if kind == "tar":
                meta = _import_tar(src, writer, progress)
            elif kind == "dir":
                meta = _import_dir(src, writer, progress, warn)
            else:
                meta = _import_image(src, kind, ref, writer, progress, warn)
            writer.finish()
        progress.done()
        meta.setdefault("architecture", guess_arch(rootfs) or host_arch())
        meta["source_path"] = os.path.abspath(src)
        return store.commit(name, staging, meta, replace=replace, in_use=in_use)
    except BaseException:
        progress.done()
        store.abort(staging)
        raise


def _import_tar(src: str, writer: RootfsWriter, progress: Progress) -> dict:
    progress.start(f"import {os.path.basename(src)}", os.path.getsize(src))
    with open(src, "rb") as raw:
        reader = HashingReader(raw, progress.advance)
        with tar_stream(reader, src) as tar:
            writer.add_all(tar_entries(tar))
        reader.drain()
    return {"source": "tar", "compression": sniff_file(src) or "tar",
            "source_digest": reader.digest()}


def _import_dir(src: str, writer: RootfsWriter, progress: Progress,
                warn: Callable[[str], None] | None) -> dict:
    progress.start(f"copy {src}", None)
    for e in dir_entries(src, warn):
        writer.add(e)
        progress.advance(e.size)
    return {"source": "dir"}


def _import_image(src: str, kind: str, ref: str | None, writer: RootfsWriter,
                  progress: Progress, warn: Callable[[str], None] | None) -> dict:
    bundle = DirBundle(src) if os.path.isdir(src) else TarBundle(src)
    try:
        image = oci.read_oci(bundle, ref) if kind == "oci" else oci.read_docker(bundle, ref)
        total = sum(bundle.size(layer.path) for layer in image.layers)
        progress.start(f"import {len(image.layers)} layer(s)", total or None)
        oci.apply_layers(bundle, image, writer, progress.advance)
    finally:
        bundle.close()
    meta = {"source": kind, "source_digest": image.digest, "ref": image.ref,
            "layers": len(image.layers), **oci.defaults(image.config)}
    arch = image.config.get("architecture")
    if isinstance(arch, str) and arch:
        meta["architecture"] = arch
        if arch != host_arch() and warn:
            warn(f"the image is for {arch}; this machine is {host_arch()}")
    return meta
