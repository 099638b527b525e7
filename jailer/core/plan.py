"""The mount plan: named records, one per set-up operation, in the order they are done.

A front end (``jailer.frontends.plans``) lists what the container's filesystem holds as two
plans on the ``Spec``: ``host_plan``, done by the runtime as host root in a mount
namespace before it enters the container's user namespace (mounts made there are locked
from the container's point of view), and ``ns_plan``, done by the container's pid 1 inside its
namespaces before pivot_root. The engine replays both the same way whoever built them
(``jailer.engine.mounts``).

Paths are inside the container's root. Owners are the container's own ids: the replaying
``Mounter`` maps them to the host ids of the container's root. Three records stand for what
only the start knows (``Root``, ``InitBinary``, ``CgroupFs``): the engine fills them in.
"""

from __future__ import annotations


# ── the record type (every plan operation; the engine's Facts) ──────────────────────────
class Record:
    """Positional or keyword construction from ``__slots__`` (``_defaults`` for the optional
    ones), frozen once made; ``replace(**changes)`` makes a changed copy."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, *args: object, **kw: object) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}: at most {len(names)} arguments")
        setter = object.__setattr__
        for name, value in zip(names, args, strict=False):  # shorter args: defaults below
            setter(self, name, value)
        if len(args) < len(names) or kw:
            defaults = self._defaults
            for name in names[len(args):]:
                if name in kw:
                    setter(self, name, kw.pop(name))
                elif name in defaults:
                    setter(self, name, defaults[name])
                else:
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
            if kw:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field "
                                f"{next(iter(kw))!r}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (use replace)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def values(self) -> tuple:
        """The fields in ``__slots__`` order."""
        return tuple(getattr(self, n) for n in self.__slots__)

    def replace(self, **changes: object) -> Record:
        return type(self)(**{**dict(zip(self.__slots__, self.values(), strict=True)), **changes})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self.values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


# ── filled in by the engine at start time ──────────────────────────────────────────────────
class Root(Record):
    """The container's root: the image bound (idmapped where the kernel can), or an overlay
    over it for a copy-on-write root, or nothing when a rootless start has bound it."""

    __slots__ = ()


class InitBinary(Record):
    """jailer's init binary bound read-only at ``dst`` (when the start has one)."""

    __slots__ = ("dst",)


class CgroupFs(Record):
    """The container's own cgroup directories at ``dst`` (what a cgroup namespace shows): a
    bind of the v2 directory (``create`` says what to make if ``dst`` is missing, "existing"
    that it must exist); on v1 a small tmpfs with a bind per controller, itself made
    read-only afterwards if ``seal``. Nothing when the container has no cgroup."""

    __slots__ = ("dst", "readonly", "create", "seal")
    _defaults = {"create": "dir", "seal": False}


# ── replayed as they are ───────────────────────────────────────────────────────────────────
class BindRoot(Record):
    """Bind ``src`` onto the host path ``dst`` (nodev; idmapped when ``idmap`` and the
    filesystem supports it)."""

    __slots__ = ("src", "dst", "idmap")


class PackedImage(Record):
    """Mount a packed image (a loop ``device`` holding ``fstype``) read-only at host ``dst``."""

    __slots__ = ("device", "fstype", "dst")


class Overlay(Record):
    """overlayfs of ``lower``, ``upper`` and ``work`` at host path ``dst`` (nodev)."""

    __slots__ = ("lower", "upper", "work", "dst")


class FsMount(Record):
    """A filesystem ``fstype`` from ``source`` at ``dst`` with MS_* ``flags`` and ``data``;
    ``owned``: a tmpfs that belongs to the container's root (uid=/gid= added unless ``data``
    names a uid, or the root is host root)."""

    __slots__ = ("source", "dst", "fstype", "flags", "data", "owned")
    _defaults = {"data": None, "owned": False}


class Bind(Record):
    """Bind host path ``src`` on ``dst``. ``create``: "dir" or "file" to make if missing,
    "existing" if it must exist, None for what ``src`` is. ``attrs``: MOUNT_ATTR_* to set;
    None for nosuid and nodev; ``clear``: MOUNT_ATTR_* to clear (MOUNT_ATTR__ATIME when
    ``attrs`` names an atime mode, as mount_setattr(2) wants). Both reach the whole tree.
    ``idmap``: (uid mappings, gid mappings, recursive) of an idmapped bind (no mappings: the
    container's user namespace), or None."""

    __slots__ = ("src", "dst", "readonly", "create", "recursive", "attrs", "clear", "idmap")
    _defaults = {"readonly": False, "create": None, "recursive": True, "attrs": None,
                 "clear": 0, "idmap": None}


class DeviceNode(Record):
    """A device node (``mode`` holds its type bits and permissions), unless something is at
    ``path`` already; owned by the container's ``uid``/``gid``."""

    __slots__ = ("path", "mode", "major", "minor", "uid", "gid")
    _defaults = {"uid": 0, "gid": 0}


class Symlink(Record):
    """A symbolic link ``path`` -> ``target``, owned by the container's root, unless
    something is at ``path`` already."""

    __slots__ = ("target", "path")


class MakeDir(Record):
    """A directory (and any missing parent), owned by the container's root."""

    __slots__ = ("path",)


class MountPoint(Record):
    """The real directory ``path`` for a mount made later (inside the container's
    namespaces), made now while the root may still be written: created if missing (with its
    parents, owned by the container's root), refused if a symlink or a non-directory is on
    the way."""

    __slots__ = ("path",)


class Propagation(Record):
    """Set the mount at ``dst`` to an MS_* propagation ``flags`` (private, slave, ...)."""

    __slots__ = ("dst", "flags")


class ReadOnly(Record):
    """Make ``path`` read-only: the root's own mount, or a read-only bind of itself."""

    __slots__ = ("path",)


class ReadOnlyMount(Record):
    """Make the mount at ``path`` itself read-only (no second mount on top)."""

    __slots__ = ("path",)


class Mask(Record):
    """Hide ``path``: /dev/null over a file, an empty read-only tmpfs over a directory."""

    __slots__ = ("path",)


class Lift(Record):
    """Move the mount at ``dst`` (the topmost there, with what is inside it) aside, to slot
    ``index`` of the staging directory ``stage`` (filled in by the engine; no staging
    directory: nothing moves). The host plan lifts each host-side config mount, last one
    first, once every node, mount point and the root's mode are made; ``Unstage`` puts it
    back in the container's namespaces at its place in the config's order, so that
    /proc/self/mountinfo lists the mounts as the config does."""

    __slots__ = ("index", "dst", "stage")
    _defaults = {"stage": None}


class Unstage(Record):
    """A fresh copy of the mount lifted to slot ``index``, attached at ``dst`` (the engine
    drops it when nothing was lifted)."""

    __slots__ = ("index", "dst")


class Sysctl(Record):
    """Write ``value`` to /proc/sys/KEY inside the container's own procfs."""

    __slots__ = ("key", "value")
