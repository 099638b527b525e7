"""OCI image layouts and ``docker save`` archives: pick the image, apply its layers in order.

* OCI (image-spec v1): ``oci-layout`` + ``index.json`` -> manifest (an image index is
  followed to the manifest for this host's platform, or the one tagged ``ref``) -> config and
  layers, each a blob under ``blobs/<alg>/<hex>`` whose digest is checked as it is read.
* ``docker save``: ``manifest.json`` (a list of ``{Config, RepoTags, Layers}``) -> config and
  layer tars; uncompressed layers are checked against the config's ``rootfs.diff_ids``.

Layers go through :class:`images.extract.RootfsWriter` in layer mode (whiteouts and opaque
directories). The config's ``Env``, ``Cmd``, ``Entrypoint``, ``WorkingDir`` and ``User``
become the image's defaults (meta keys ``env``, ``cmd``, ``entrypoint``, ``workdir``,
``user``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from images.archive import DirBundle, HashingReader, TarBundle, sniff, tar_stream
from images.extract import RootfsWriter, tar_entries
from images.store import ImageError, host_arch

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
MAX_JSON = 8 << 20
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")

Bundle = DirBundle | TarBundle


@dataclass
class Layer:
    path: str
    digest: str | None = None  # of the blob as stored (compressed or not)
    diff_id: str | None = None  # of the uncompressed tar
    size: int | None = None


@dataclass
class Image:
    config: dict
    layers: list[Layer] = field(default_factory=list)
    digest: str = ""  # manifest digest (OCI) or config digest (docker save)
    ref: str = ""


# ── reading ───────────────────────────────────────────────────────────────────────────────
def _read_json(bundle: Bundle, rel: str, what: str, digest: str | None = None):
    with bundle.open(rel) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise ImageError(f"{what} ({rel}) is larger than {MAX_JSON >> 20} MiB")
    if digest:
        _check_digest(data, digest, f"{what} ({rel})")
    try:
        return json.loads(data)
    except ValueError as e:
        raise ImageError(f"{what} ({rel}) is not valid JSON: {e}") from None


def _check_digest(data: bytes, digest: str, what: str) -> None:
    alg, _, hexd = digest.partition(":")
    if hashlib.new(alg, data).hexdigest() != hexd:
        raise ImageError(f"{what} does not match its digest {digest}")


def blob_path(digest: object, what: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ImageError(f"{what}: invalid digest {digest!r}")
    alg, _, hexd = digest.partition(":")
    return f"blobs/{alg}/{hexd}"


def _platform(desc: dict) -> str:
    p = desc.get("platform") or {}
    s = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return s + (f"/{p['variant']}" if p.get("variant") else "")


def _refs(desc: dict) -> set[str]:
    """The names a descriptor is tagged with (OCI ref.name, containerd's image name)."""
    ann = desc.get("annotations") or {}
    return {ann[k] for k in (REF_NAME, IMAGE_NAME) if isinstance(ann.get(k), str)}


def _matches(desc: dict, ref: str) -> bool:
    return any(r == ref or r.endswith(":" + ref) or r.rsplit(":", 1)[0] == ref
               for r in _refs(desc))


def _select(descs: list, ref: str | None, arch: str, what: str) -> dict:
    """The descriptor for ``ref`` (if given) and this platform, or a clear error."""
    descs = [d for d in descs if isinstance(d, dict)]
    if not descs:
        raise ImageError(f"{what} lists no image")
    if ref:
        tagged = [d for d in descs if _matches(d, ref)]
        if not tagged:
            names = sorted({r for d in descs for r in _refs(d)})
            raise ImageError(f"{what} has no image {ref!r} (it has: "
                             f"{', '.join(names) or 'untagged images only'})")
        descs = tagged
    else:
        groups = {tuple(sorted(_refs(d))) for d in descs}
        if len(groups) > 1:
            names = sorted({r for d in descs for r in _refs(d)})
            raise ImageError(f"{what} holds several images ({', '.join(names)}): choose one "
                             f"with --ref")
    if len(descs) == 1:
        return descs[0]
    ours = [d for d in descs if not d.get("platform") or (
        (d["platform"].get("os") or "linux") == "linux"
        and d["platform"].get("architecture") == arch)]
    if not ours:
        raise ImageError(f"{what} has no image for linux/{arch} (it has: "
                         f"{', '.join(_platform(d) for d in descs)})")
    return ours[0]


def read_oci(bundle: Bundle, ref: str | None = None, arch: str | None = None) -> Image:
    """Resolve an OCI image layout to one image: config, layers and manifest digest."""
    arch = arch or host_arch()
    if not bundle.has("oci-layout"):
        raise ImageError("not an OCI image layout (no oci-layout file)")
    layout = _read_json(bundle, "oci-layout", "oci-layout")
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")
                                               ).startswith("1."):
        raise ImageError(f"unsupported OCI layout version {layout!r}")
    index = _read_json(bundle, "index.json", "index.json")
    desc = _select((index or {}).get("manifests") or [], ref, arch, "index.json")
    for _ in range(4):  # nested indexes
        mt = desc.get("mediaType", "")
        digest = desc.get("digest")
        doc = _read_json(bundle, blob_path(digest, "manifest"), "manifest", digest)
        if not isinstance(doc, dict):
            raise ImageError(f"manifest {digest} is not a JSON object")
        mt = mt or doc.get("mediaType", "")
        if mt in INDEX_TYPES or "manifests" in doc:
            desc = _select(doc.get("manifests") or [], None, arch, f"image index {digest}")
            continue
        if mt and mt not in MANIFEST_TYPES:
            raise ImageError(f"manifest {digest}: unsupported media type {mt}")
        cdesc = doc.get("config") or {}
        config = _read_json(bundle, blob_path(cdesc.get("digest"), "config"), "image config",
                            cdesc.get("digest"))
        diff_ids = ((config.get("rootfs") or {}).get("diff_ids") or []
                    if isinstance(config, dict) else [])
        layers = []
        for i, ld in enumerate(doc.get("layers") or []):
            if not isinstance(ld, dict):
                raise ImageError(f"manifest {digest}: layer {i + 1} is not a descriptor")
            layers.append(Layer(path=blob_path(ld.get("digest"), f"layer {i + 1}"),
                                digest=ld.get("digest"),
                                diff_id=diff_ids[i] if i < len(diff_ids) else None,
                                size=ld.get("size") if isinstance(ld.get("size"), int)
                                else None))
        return Image(config=config if isinstance(config, dict) else {}, layers=layers,
                     digest=digest, ref=ref or next(iter(sorted(_refs(desc))), ""))
    raise ImageError("image indexes nested too deeply")


def read_docker(bundle: Bundle, ref: str | None = None) -> Image:
    """Resolve a ``docker save`` archive (manifest.json) to one image."""
    manifest = _read_json(bundle, "manifest.json", "manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise ImageError("manifest.json does not list any image")
    entries = [m for m in manifest if isinstance(m, dict)]
    if ref:
        entries = [m for m in entries if any(t == ref or t.rsplit(":", 1)[-1] == ref
                                             for t in m.get("RepoTags") or [])]
        if not entries:
            tags = [t for m in manifest if isinstance(m, dict) for t in m.get("RepoTags") or []]
            raise ImageError(f"the archive has no image {ref!r} (it has: "
                             f"{', '.join(tags) or 'untagged images only'})")
    if len(entries) > 1:
        tags = [t for m in entries for t in m.get("RepoTags") or []]
        raise ImageError(f"the archive holds {len(entries)} images ({', '.join(tags)}): "
                         f"choose one with --ref")
    m = entries[0]
    cpath = m.get("Config")
    if not isinstance(cpath, str):
        raise ImageError("manifest.json: the image has no Config")
    cdigest = _digest_of_path(cpath)
    config = _read_json(bundle, cpath, "image config", cdigest)
    if not isinstance(config, dict):
        raise ImageError(f"image config {cpath} is not a JSON object")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    layers = []
    for i, path in enumerate(m.get("Layers") or []):
        if not isinstance(path, str):
            raise ImageError(f"manifest.json: layer {i + 1} is not a path")
        layers.append(Layer(path=path, digest=_digest_of_path(path),
                            diff_id=diff_ids[i] if i < len(diff_ids) else None))
    return Image(config=config, layers=layers, digest=cdigest or "",
                 ref=ref or next(iter(m.get("RepoTags") or []), ""))


def _digest_of_path(path: str) -> str | None:
    """A blob's digest from its name: blobs/sha256/HEX or HEX.json (docker's config)."""
    m = re.match(r"^(?:.*/)?blobs/(sha256|sha512)/([a-f0-9]+)$", path)
    if m:
        return f"{m.group(1)}:{m.group(2)}"
    m = re.match(r"^([a-f0-9]{64})\.json$", path)
    return f"sha256:{m.group(1)}" if m else None


# ── applying ──────────────────────────────────────────────────────────────────────────────
def defaults(config: dict) -> dict:
    """Run defaults from an image config (keys of meta.json)."""
    c = config.get("config") or {}
    if not isinstance(c, dict):
        raise ImageError("image config: 'config' is not an object")

    def strings(key: str) -> list[str]:
        v = c.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ImageError(f"image config: {key} is not a list of strings")
        return v

    def string(key: str) -> str:
        v = c.get(key) or ""
        if not isinstance(v, str):
            raise ImageError(f"image config: {key} is not a string")
        return v

    return {"cmd": strings("Cmd"), "entrypoint": strings("Entrypoint"), "env": strings("Env"),
            "workdir": string("WorkingDir"), "user": string("User")}


def apply_layers(bundle: Bundle, image: Image, writer: RootfsWriter,
                 progress: Callable[[int], None] | None = None) -> None:
    """Apply ``image``'s layers in order, checking every digest we can.

    The blob digest is checked for every layer named by digest; the config's diff_id for
    every uncompressed layer (docker save's layer.tar files).
    """
    for i, layer in enumerate(image.layers):
        what = f"layer {i + 1}/{len(image.layers)} ({layer.path})"
        with bundle.open(layer.path) as raw:
            reader = HashingReader(raw, progress)
            buf = io.BufferedReader(reader, 1 << 20)
            compression = sniff(buf.peek(512)[:512])
            with tar_stream(buf, what) as tar:
                writer.begin_layer()
                writer.add_all(tar_entries(tar))
                writer.end_layer()
            while buf.read(1 << 20):
                pass
        got = reader.digest()
        if layer.digest and layer.digest.startswith("sha256:") and got != layer.digest:
            raise ImageError(f"{what} does not match its digest {layer.digest} (got {got})")
        if (layer.diff_id and layer.diff_id.startswith("sha256:")
                and compression in ("tar", None) and got != layer.diff_id):
            raise ImageError(f"{what} does not match its diff_id {layer.diff_id} (got {got})")
    writer.finish()


def image_size(image: Image) -> int | None:
    sizes = [layer.size for layer in image.layers]
    return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore
