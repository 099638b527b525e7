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
    for cid, (owner, image, cgroup, root) in records(data):
        if not _owner_alive(owner):
            done += undo_start(data, cid, image, cgroup=cgroup, cgroup_root=root == "root")
    for base in IdPool(os.path.join(data, "idpool")).gc(_owner_alive):
        done.append(f"released uid range {base}-{base + 65535}")
    return done


def records(data: str) -> list[tuple[str, tuple[str, str, str, str]]]:
    """The start records: (id, (owner, image, cgroup name, "root" or "")), by id."""
    starts = os.path.join(data, "starts")
    out = []
    for cid in sorted(os.listdir(starts)) if os.path.isdir(starts) else ():
        if not ids.valid_id(cid):
            continue  # (and a record's "<id>@cgroup")
        try:
            with open(os.path.join(starts, cid), "rb") as f:
                lines = f.read(8192).decode(errors="replace").split("\n")
        except (FileNotFoundError, IsADirectoryError):
            continue
        owner, image, cgroup, root = [x.strip() for x in (lines + ["", "", "", ""])[:4]]
        out.append((cid, (owner, image, cgroup, root)))
    return out


def undo_owned(data: str, owner: str) -> list[str]:
    """Undo every start recorded for ``owner`` (its cgroups killed and removed)."""
    done = []
    for cid, (who, image, cgroup, root) in records(data):
        if who == owner:
            done += undo_start(data, cid, image, cgroup=cgroup, cgroup_root=root == "root")
    return done


def undo_start(data: str, cid: str, image: str = "",
               proc_cgroup: str = "/proc/self/cgroup", *, cgroup: str = "",
               cgroup_root: bool = False) -> list[str]:
    """Remove what start ``cid`` left on the host: its image-use record, throw-away upper
    layer, cgroup (``cgroup``, default jailer-ID, below the cgroups its start record saved,
    else those listed in ``proc_cgroup``; from the hierarchies' root for ``cgroup_root``) and
    start record. Idempotent. An id that is not ``ids.valid_id`` (one read from a tampered
    state file, say ``../../x``) names nothing: it is never turned into a path; nor is a
    cgroup name with a ``..``."""
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
    record = os.path.join(data, "starts", cid)
    if os.path.isfile(record + "@cgroup"):
        proc_cgroup = record + "@cgroup"
    name = cgroup or f"jailer-{cid}"
    if _remove_cgroup(name, proc_cgroup, cgroup_root):
        done.append(f"removed cgroup {name}")
    if _stop_held_scope(proc_cgroup, cid):
        done.append(f"stopped scope jailer-{cid}.scope")
    for path in (record + "@cgroup", record):  # (the record last: see Launch._record_start)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return done


def _remove_cgroup(name: str, proc_cgroup: str = "/proc/self/cgroup",
                   root: bool = False) -> bool:
    import cgroups

    if not os.path.exists(proc_cgroup):
        proc_cgroup = "/proc/self/cgroup"
    try:
        cg = cgroups.open_manager(name.strip("/") if root else name, proc_cgroup=proc_cgroup,
                                  parent="/" if root else None)  # (checks the name)
        if not cg.exists():
            return False
        cg.delete(parents=not root)
        return True
    except cgroups.CgroupError:
        return False


def _stop_held_scope(proc_cgroup: str, cid: str) -> bool:
    """Stop the scope of its own that start ``cid`` had on a systemd host (its cgroup's
    parent, as its record names it: jailer.slice/jailer-ID.scope), with its holder."""
    import cgroups

    try:
        parent = cgroups.own_cgroup(proc_cgroup, "").strip("/")
    except cgroups.CgroupError:
        return False
    if parent != f"jailer.slice/jailer-{cid}.scope" or \
            not os.path.isdir(f"/sys/fs/cgroup/{parent}"):
        return False
    try:
        scope = cgroups.open_held_scope(f"jailer.slice:jailer:{cid}")
        scope.started = True  # (the start recorded it: ours to stop)
        scope.stop()
    except (cgroups.CgroupError, OSError):
        return False
    return True


def _owner_alive(owner: str) -> bool:
    """Does the owner of a range or start record still exist: a process (pid and start
    time), a named jail (its definition), an OCI container (its state directory, with a
    live start: see ``container_alive``)?"""
    kind, _, rest = owner.partition(":")
    if kind == "jail":
        from jailer.frontends import jaildef

        return not ids.valid_name(rest) or os.path.exists(jaildef.definition_path(rest))
    if kind == "container":
        return container_alive(rest)
    return owner_alive(owner)


def container_alive(cdir: str) -> bool:
    """Does the container of directory ``cdir`` (the owner of a start record) still answer
    for its start? Not when the directory or its state is gone (a create killed early) or
    the state says stopped with nobody left; a state that cannot be read counts as alive
    (``delete --force`` removes it, not gc)."""
    from jailer.objects import state

    if not os.path.isabs(cdir) or not ids.valid_id(os.path.basename(cdir)):
        return False  # not a container directory: nothing answers for the record
    if not os.path.isdir(cdir):
        return False
    try:
        st = state.read(cdir)
    except state.StateError:
        return True
    if not st:
        return False
    return state.observe(cdir, st)["status"] != "stopped" or state.monitor_alive(st)

