"""jailer: Linux containers from kernel primitives.

Python API (nothing heavy is imported until used)::

    import jailer
    r = jailer.run("busybox", ["echo", "hi"], level="jail", capture_output=True)
    r.returncode, r.stdout

    j = jailer.Jail("busybox", level="container", hostname="box", timeout=5)
    j.run(["sh", "-c", "hostname"], capture_output=True)
"""

from __future__ import annotations

__all__ = ["Jail", "JailerError", "run"]


def __getattr__(name: str):
    if name == "JailerError":
        from jailer.core.errors import JailerError

        return JailerError
    if name in __all__:
        from jailer import api

        return getattr(api, name)
    raise AttributeError(name)
