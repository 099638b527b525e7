"""Garbage collection: what a SIGKILLed runtime could not undo itself.

Mounts and processes need no collection (they live in namespaces that die with the
container); what can remain on the host are a start's cgroup, its upper layer and its uid
range. Every start is recorded in ``<data>/starts/<id>`` with its runtime's pid and start time;
a record whose process is gone marks a start to undo.
"""

from __future__ import annotations

import os

from jailer.core import ids, paths
from jailer.engine.idpool import IdPool, owner_alive
from jailer.kernel.fsutil import remove_tree


def collect(data_dir: str | None = None) -> list[str]:
    """Undo starts whose runtime is gone; return one line per thing removed."""
    data = data_dir or paths.data_dir()
    done = []
    starts = os.path.join(data, "starts")
    for cid in sorted(os.listdir(starts)) if os.path.isdir(starts) else ():
        if not ids.valid_id(cid):
            continue
        record = os.path.join(starts, cid)
        try:
            with open(record) as f:
                owner, _, image = f.read().partition("\n")
        except FileNotFoundError:
            continue
        if owner_alive(owner.strip()):
            continue
        done += undo_start(data, cid, image.strip())
    for base in IdPool(os.path.join(data, "idpool")).gc():
        done.append(f"released uid range {base}-{base + 65535}")
    return done


def undo_start(data: str, cid: str, image: str = "",
               proc_cgroup: str = "/proc/self/cgroup") -> list[str]:
    """Remove what start ``cid`` left on the host: its image-use record, throw-away upper
    layer, cgroup (below the cgroups listed in ``proc_cgroup``) and start record. Idempotent.
    An id that is not ``ids.valid_id`` (one read from a tampered state file, say
    ``../../x``) names nothing: it is never turned into a path."""
    done = []
    if not ids.valid_id(cid):
        return done
    if image:
        from images.store import Store

        Store(os.path.join(data, "images")).remove_user(image, cid)
    cdir = os.path.join(data, "containers", cid)
    if os.path.isdir(cdir):
        remove_tree(cdir)
        done.append(f"removed upper layer of container {cid}")
    if _remove_cgroup(cid, proc_cgroup):
        done.append(f"removed cgroup jailer-{cid}")
    try:
        os.unlink(os.path.join(data, "starts", cid))
    except FileNotFoundError:
        pass
    return done


def _remove_cgroup(cid: str, proc_cgroup: str = "/proc/self/cgroup") -> bool:
    import cgroups

    if not os.path.exists(proc_cgroup):
        proc_cgroup = "/proc/self/cgroup"
    try:
        cg = cgroups.open_manager(f"jailer-{cid}", proc_cgroup=proc_cgroup)
        if not cg.exists():
            return False
        cg.delete()
        return True
    except cgroups.CgroupError:
        return False
