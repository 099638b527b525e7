"""images: build, import, store and pack root filesystems. Independent of ``jailer``.

Public API (modules are imported lazily by their users; this package imports only the store,
which is on the start path of ``jailer run``):

* :mod:`images.store`: :class:`Store`, :class:`ImageError`, :func:`packed_rootfs`
* :mod:`images.busybox` / :mod:`images.debian`: ``build(store, name, ...)``
* :mod:`images.importer`: ``import_image(store, src, name, ...)`` (tar, OCI, docker, dir)
* :mod:`images.extract`: :class:`RootfsWriter`, :class:`Policy`, ``extract_tar`` (safe
  extraction of untrusted archives)
* :mod:`images.pack`: ``pack(store, name, fmt)``, ``export(store, name, output)``
* :mod:`images.loop`: ``attach(path) -> /dev/loopN``, ``detach(dev)``
* :mod:`images.tree`: directory walks and the image digest
"""

from images.store import ImageError, Store, packed_rootfs

__all__ = ["ImageError", "Store", "packed_rootfs"]
