"""Garbage collection: what a SIGKILLed runtime could not undo itself.

Mounts and processes need no collection (they live in namespaces that die with the
container); what remains on the host are per-run upper layers and uid-range records.
"""

from __future__ import annotations

import os

from jailer import paths
from jailer.fsutil import remove_tree
from jailer.idpool import IdPool, owner_alive


def collect(data_dir: str | None = None) -> list[str]:
    """Remove state whose owning runtime is gone; return one line per removal."""
    data = data_dir or paths.data_dir()
    done = []
    cdirs = os.path.join(data, "containers")
    for name in sorted(os.listdir(cdirs)) if os.path.isdir(cdirs) else ():
        owner_file = os.path.join(cdirs, name, "owner")
        try:
            with open(owner_file) as f:
                owner = f.read().strip()
        except FileNotFoundError:
            continue  # kept on purpose (--keep) or not ours
        if not owner_alive(owner):
            remove_tree(os.path.join(cdirs, name))
            done.append(f"removed upper layer of container {name}")
    for base in IdPool(os.path.join(data, "idpool")).gc():
        done.append(f"released uid range {base}-{base + 65535}")
    return done
