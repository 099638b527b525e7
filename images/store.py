"""The image store: ``<root>/<name>/rootfs`` plus ``<root>/<name>/meta.json``.

Layout of one image directory::

    <root>/<name>/rootfs/          the root filesystem (never written by jailer once built)
    <root>/<name>/meta.json        metadata, see below
    <root>/<name>/<name>.squashfs  optional packed copies (``jailer image pack``)
    <root>/<name>/<name>.erofs
    <root>/<name>/users/<id>       one file per container using the image; content: its owner

``meta.json`` keys: ``source`` (busybox, debian, tar, oci, docker, dir), ``created`` (UTC,
ISO 8601), ``architecture`` (Debian/OCI names: amd64, arm64, ...), ``size`` (bytes of regular
files, each inode once), ``files`` (entries), ``digest`` (``sha256:`` of the deterministic
listing made by :func:`images.tree.summarize`), the image's run defaults ``cmd``,
``entrypoint``, ``env``, ``workdir``, ``user``, ``readonly: true`` and, once packed,
``packed: {format: file name relative to the image directory}``. Sources add their own keys
(``suite``, ``mirror``, ``source_path``, ``source_digest``, ...).

Read-only: the store's rootfs is never written by jailer after the build. Containers get an
overlayfs upper layer of their own on top of it (or of a loop-mounted packed copy); a rebuild
(``--replace``) swaps the whole directory by rename and refuses while the image is in use.

Builds go to a staging directory ``<root>/.<name>.building.<pid>`` that is renamed into place
at the very end, so a failed or killed build never leaves a half-built image: ``begin()``
removes stale staging directories of processes that no longer exist.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # no typing import on the start path
if TYPE_CHECKING:
    from collections.abc import Callable

# json and re are imported where used: resolving an image name is on the start path.
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_FIRST | frozenset("._-")
PACK_FORMATS = ("erofs", "squashfs")  # packed_rootfs() prefers them in this order


class ImageError(Exception):
    """A user-facing image problem (unknown name, invalid name, failed build)."""


class Store:
    """Images kept under one directory; each is a read-only rootfs with metadata."""

    def __init__(self, root: str) -> None:
        self.root = root

    def secure(self) -> None:
        """Keep the store out of other users' reach: 0700 (as podman keeps container
        storage). Image roots hold world-writable dirs (``tmp`` is 1777): through a
        searchable store any host user could plant files that every new container sees.
        Stores made before this rule are tightened the next time they are used."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            st = os.stat(self.root)
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(self.root, 0o700)

    def path(self, name: str) -> str:
        """The image directory of ``name`` (whether or not it exists)."""
        return os.path.join(self.root, name)

    def rootfs(self, name: str) -> str:
        """Rootfs directory of image ``name``; ImageError if there is no such image."""
        check_name(name)
        path = os.path.join(self.root, name, "rootfs")
        if not os.path.isdir(path):
            raise ImageError(f"no image named {name!r} in {self.root} "
                             f"(build one with: jailer image build busybox)")
        return path

    def exists(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.root, name, "rootfs"))

    def meta(self, name: str) -> dict:
        """The image's meta.json. Every start reads it, so a marshal copy
        (``.meta.marshal``, rewritten whenever meta.json is newer) is read instead when it is
        current (no ``json`` import on the start path)."""
        import marshal

        path = os.path.join(self.root, name, "meta.json")
        cache = os.path.join(self.root, name, ".meta.marshal")
        try:
            src = os.stat(path)
        except FileNotFoundError:
            return {}
        try:
            if os.stat(cache).st_mtime_ns >= src.st_mtime_ns:
                with open(cache, "rb") as f:
                    return marshal.load(f)
        except (OSError, EOFError, ValueError, TypeError):
            pass
        import json

        with open(path) as f:
            meta = json.load(f)
        try:
            tmp = f"{cache}.{os.getpid()}"
            with open(tmp, "wb") as f:
                marshal.dump(meta, f)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only store: just no cache
        return meta

    def write_meta(self, name: str, meta: dict) -> None:
        """Replace ``meta.json`` of an existing image atomically (write, then rename)."""
        import json

        final = os.path.join(self.path(name), "meta.json")
        tmp = f"{final}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        os.rename(tmp, final)

    def list(self) -> list[dict]:
        if not os.path.isdir(self.root):
            return []
        return [{"name": n, **self.meta(n)} for n in sorted(os.listdir(self.root))
                if valid_name(n) and self.exists(n)]

    # ── users: containers whose lower layer is this image ───────────────────────────────
    def users(self, name: str) -> dict[str, str]:
        """``{container id: owner}`` from ``<image>/users/*``, written by the runtime."""
        d = os.path.join(self.path(name), "users")
        out: dict[str, str] = {}
        try:
            entries = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            return out
        for cid in entries:
            try:
                with open(os.path.join(d, cid)) as f:
                    out[cid] = f.read().strip()
            except OSError:
                out[cid] = ""
        return out

    def add_user(self, name: str, cid: str, owner: str) -> None:
        """Record that container ``cid`` (of ``owner``) uses image ``name``."""
        if not cid or "/" in cid or cid.startswith("."):
            raise ImageError(f"invalid container id {cid!r}")
        self.secure()
        d = os.path.join(self.path(name), "users")
        os.makedirs(d, mode=0o755, exist_ok=True)
        with open(os.path.join(d, cid), "w") as f:
            f.write(owner + "\n")

    def remove_user(self, name: str, cid: str) -> None:
        try:
            os.unlink(os.path.join(self.path(name), "users", cid))
        except FileNotFoundError:
            pass

    # ── building ──────────────────────────────────────────────────────────────────────────
    def begin(self, name: str) -> str:
        """A fresh staging dir for building ``name``; commit() or abort() it."""
        check_name(name)
        self.secure()
        self.clean_stale()
        staging = os.path.join(self.root, f".{name}.building.{os.getpid()}")
        remove_tree(staging)
        os.mkdir(staging, 0o755)
        os.mkdir(os.path.join(staging, "rootfs"), 0o755)
        return staging

    def commit(self, name: str, staging: str, meta: dict, replace: bool = False,
               in_use: Callable[[str], bool] | None = None) -> str:
        """Complete ``meta`` (digest, size, ...), write it and move ``staging`` into place.

        On any failure the staging directory is removed. With ``replace`` an existing image
        is swapped out by rename and then deleted, unless ``in_use(name)`` says it is in use.
        """
        import json

        try:
            meta = complete_meta(os.path.join(staging, "rootfs"), meta)
            with open(os.path.join(staging, "meta.json"), "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
                f.write("\n")
            final = self.path(name)
            old = None
            if os.path.exists(final):
                if not replace:
                    raise ImageError(f"image {name!r} already exists (remove it first, or "
                                     f"pass --replace)")
                self._refuse_in_use(name, in_use)
                old = os.path.join(self.root, f".{name}.removing.{os.getpid()}")
                os.rename(final, old)
            try:
                os.rename(staging, final)
            except BaseException:
                if old:
                    os.rename(old, final)  # put the previous image back
                raise
        except BaseException:
            self.abort(staging)
            raise
        if old:
            remove_tree(old)
        return final

    @staticmethod
    def abort(staging: str) -> None:
        remove_tree(staging)

    def clean_stale(self) -> list[str]:
        """Remove staging/removal dirs left by builds that were killed; return their names."""
        gone = []
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return gone
        for e in entries:
            parts = e.rsplit(".", 2)
            if (e.startswith(".") and len(parts) == 3 and parts[1] in ("building", "removing")
                    and parts[2].isdigit() and not _alive(int(parts[2]))):
                try:
                    remove_tree(os.path.join(self.root, e))
                except (ImageError, OSError):
                    continue  # something is mounted in it: leave it to an administrator
                gone.append(e)
        return gone

    # ── removing ──────────────────────────────────────────────────────────────────────────
    def remove(self, name: str, in_use: Callable[[str], bool] | None = None) -> None:
        """Delete image ``name``; ImageError if it does not exist or ``in_use(name)``.

        ``in_use`` is the runtime's checker (the CLI passes one that looks at
        ``<image>/users/*``). The directory is renamed away first, so a half-deleted image
        is never visible under its name.
        """
        self.rootfs(name)  # validates the name, raises if there is no such image
        self._refuse_in_use(name, in_use)
        doomed = os.path.join(self.root, f".{name}.removing.{os.getpid()}")
        os.rename(self.path(name), doomed)
        remove_tree(doomed)

    def _refuse_in_use(self, name: str, in_use: Callable[[str], bool] | None) -> None:
        if in_use is not None and in_use(name):
            users = self.users(name)
            who = ", ".join(f"{cid} ({owner})" if owner else cid
                            for cid, owner in users.items())
            raise ImageError(f"image {name!r} is in use" + (f" by container(s) {who}"
                                                          if who else "")
                             + ": stop them first")


def packed_rootfs(store: Store | str, name: str) -> tuple[str, str] | None:
    """``(absolute path, fstype)`` of a packed copy of image ``name``, or None.

    The runtime can loop-mount it read-only (``images.loop.attach``) as the lower layer.
    erofs is preferred over squashfs when both exist.
    """
    st = store if isinstance(store, Store) else Store(store)
    packed = st.meta(name).get("packed") or {}
    for fstype in PACK_FORMATS:
        rel = packed.get(fstype)
        if rel:
            path = rel if os.path.isabs(rel) else os.path.join(st.path(name), rel)
            if os.path.isfile(path):
                return path, fstype
    return None


def complete_meta(rootfs: str, meta: dict) -> dict:
    """``meta`` plus what every image records: digest, size, files, created, defaults."""
    import time

    from images import tree

    out = dict(meta)
    if "digest" not in out or "size" not in out:
        out.update(tree.summarize(rootfs))
    out.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    out.setdefault("architecture", host_arch())
    for key, default in (("cmd", []), ("entrypoint", []), ("env", []), ("workdir", ""),
                         ("user", "")):
        out.setdefault(key, default)
    out["readonly"] = True
    return out


_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64", "mips64": "mips64le", "loongarch64": "loong64"}


def host_arch() -> str:
    """This machine's architecture in Debian/OCI spelling (amd64, arm64, ...)."""
    machine = os.uname().machine
    return _GOARCH.get(machine, machine)


def remove_tree(path: str) -> None:
    """``rm -rf path``, refusing to descend into anything mounted below it."""
    if not os.path.lexists(path):
        return
    real = os.path.realpath(path)
    mounted = [m for m in _mount_points() if m == real or m.startswith(real + "/")]
    if mounted:
        raise ImageError(f"cannot remove {path}: {mounted[0]} is mounted inside it "
                         f"(unmount it first)")
    from images.tree import remove_at

    parent, name = os.path.split(os.path.abspath(path))
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        remove_at(fd, name)  # iterative: a tree of any depth
    finally:
        os.close(fd)


def _mount_points() -> list[str]:
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                field = line.split()[4]
                out.append(field.replace("\\040", " ").replace("\\011", "\t")
                           .replace("\\012", "\n").replace("\\134", "\\"))
    except OSError:
        pass
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def valid_name(name: str) -> bool:
    """Lowercase letters, digits, '.', '_', '-'; starts with a letter or digit; <= 64 chars."""
    return (0 < len(name or "") <= 64 and name[0] in _NAME_FIRST
            and all(c in _NAME_CHARS for c in name))


def check_name(name: str) -> None:
    if not valid_name(name):
        raise ImageError(f"invalid image name {name!r}: use lowercase letters, digits, '.', "
                         f"'_' and '-', starting with a letter or digit, at most 64 "
                         f"characters")
