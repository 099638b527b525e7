"""The image store: ``<root>/<name>/rootfs`` plus ``<root>/<name>/meta.json``."""

from __future__ import annotations

import os

# json, re and shutil are imported where used: resolving an image name is on the start path.
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _NAME_FIRST | frozenset("._-")


class ImageError(Exception):
    """A user-facing image problem (unknown name, invalid name, failed build)."""


class Store:
    """Images kept under one directory; each is a read-only rootfs with metadata."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, name: str) -> str:
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
        import json

        try:
            with open(os.path.join(self.root, name, "meta.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def list(self) -> list[dict]:
        if not os.path.isdir(self.root):
            return []
        return [{"name": n, **self.meta(n)} for n in sorted(os.listdir(self.root))
                if self.exists(n)]

    def begin(self, name: str) -> str:
        """A fresh staging dir for building ``name``; commit() or abort() it."""
        import shutil

        check_name(name)
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        staging = os.path.join(self.root, f".{name}.building.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        os.mkdir(staging, 0o755)
        os.mkdir(os.path.join(staging, "rootfs"), 0o755)
        return staging

    def commit(self, name: str, staging: str, meta: dict, replace: bool = False) -> str:
        import json
        import shutil

        with open(os.path.join(staging, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        final = self.path(name)
        if os.path.exists(final):
            if not replace:
                self.abort(staging)
                raise ImageError(f"image {name!r} already exists (remove it first)")
            shutil.rmtree(final)
        os.rename(staging, final)
        return final

    @staticmethod
    def abort(staging: str) -> None:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


def valid_name(name: str) -> bool:
    """Lowercase letters, digits, '.', '_', '-'; starts with a letter or digit; <= 64 chars."""
    return (0 < len(name or "") <= 64 and name[0] in _NAME_FIRST
            and all(c in _NAME_CHARS for c in name))


def check_name(name: str) -> None:
    if not valid_name(name):
        raise ImageError(f"invalid image name {name!r}: use lowercase letters, digits, '.', "
                         f"'_' and '-', at most 64 characters")
