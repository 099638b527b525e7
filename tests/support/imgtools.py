"""Helpers for the image tests: archives, OCI layouts and docker-save archives made by the
tests themselves, and checks shared by several files."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

MTIME = 1_700_000_000
TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE}


def member(name: str, kind: str = "file", data: bytes = b"", mode: int | None = None,
           uid: int = 0, gid: int = 0, link: str = "", xattrs: dict[str, str] | None = None,
           dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    """One tar member as (TarInfo, data)."""
    ti = tarfile.TarInfo(name)
    ti.type = TYPES[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.uid, ti.gid, ti.mtime = uid, gid, MTIME
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    ti.size = len(data) if kind == "file" else 0
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return ti, data


def tar_bytes(members, compression: str = "", rootfs: str | None = None) -> bytes:
    """A PAX tar of ``rootfs`` (if given, as ".") followed by ``members``; compression is
    "", "gz", "xz" or "zst"."""
    buf = io.BytesIO()
    mode = f"w:{compression}" if compression in ("gz", "xz", "bz2") else "w"
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as t:
        if rootfs:
            t.add(rootfs, arcname=".")
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    raw = buf.getvalue()
    if compression == "zst":
        raw = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                             check=True).stdout
    return raw


def write_tar(path: Path, members, compression: str = "", rootfs: str | None = None) -> Path:
    path.write_bytes(tar_bytes(members, compression, rootfs))
    return path


def _blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    d = layout / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    (d / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_oci(layout: Path, layers: list[bytes], config: dict, ref: str = "latest",
              compression: str = "gzip", arch: str = "amd64") -> str:
    """An OCI image layout with ``layers`` (uncompressed tars, stored with ``compression``:
    "gzip", "zstd" or ""); returns the manifest digest."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descs = []
    for layer in layers:
        if compression == "gzip":
            data = gzip.compress(layer, mtime=0)
        elif compression == "zstd":
            data = subprocess.run(["zstd", "-q", "-c"], input=layer, capture_output=True,
                                  check=True).stdout
        else:
            data = layer
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar"
                      + (f"+{compression}" if compression else ""), **_blob(layout, data)})
    config = {"architecture": arch, "os": "linux", **config,
              "rootfs": {"type": "layers",
                         "diff_ids": [f"sha256:{hashlib.sha256(x).hexdigest()}"
                                      for x in layers]}}
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json",
             **_blob(layout, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cdesc, "layers": descs}
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             **_blob(layout, json.dumps(manifest).encode()),
             "annotations": {"org.opencontainers.image.ref.name": ref},
             "platform": {"architecture": arch, "os": "linux"}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    return mdesc["digest"]


def write_docker_save(path: Path, layers: list[bytes], config: dict,
                      tag: str = "test/image:latest", layer_paths: list[str] | None = None
                      ) -> Path:
    """A legacy ``docker save`` archive: <id>/layer.tar, <config>.json, manifest.json."""
    config = {"architecture": "amd64", "os": "linux", **config,
              "rootfs": {"type": "layers",
                         "diff_ids": [f"sha256:{hashlib.sha256(x).hexdigest()}"
                                      for x in layers]}}
    cdata = json.dumps(config).encode()
    chex = hashlib.sha256(cdata).hexdigest()
    paths = layer_paths or [f"{hashlib.sha256(x).hexdigest()}/layer.tar" for x in layers]
    manifest = [{"Config": f"{chex}.json", "RepoTags": [tag], "Layers": paths}]
    members = [member(f"{chex}.json", data=cdata)]
    for p, data in zip(paths, layers, strict=False):
        members.append(member(p, data=data))
    members.append(member("manifest.json", data=json.dumps(manifest).encode()))
    path.write_bytes(tar_bytes(members))
    return path


def one_line_error(r, *needles: str) -> str:
    """The CLI failed with one ``jailer: ...`` line naming every needle."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("jailer: warning")]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("jailer: "), lines[0]
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def store_entries(data_dir: Path) -> set[str]:
    """Names in the image store, staging directories included."""
    d = data_dir / "images"
    return set(os.listdir(d)) if d.is_dir() else set()


def tree(path: Path) -> dict[str, str]:
    """``{relative path: kind}`` of everything under ``path`` (symlinks not followed)."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = Path(root) / n
            rel = str(p.relative_to(path))
            out[rel] = ("symlink" if p.is_symlink() else "dir" if p.is_dir() else "file")
    return out
