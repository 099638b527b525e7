"""The rules for ids and names that become a path component or a cgroup name.

``valid_id``: an OCI container's id, a start's id, any id read back from a user or a state
file. runc's rule (libcontainer ``validateID``): ASCII letters, digits and ``_ + - .``, not
empty, not ``.`` or ``..``; here also at most ``ID_MAX`` characters.

``valid_name``: a named jail's name, stricter (it is also the default hostname): ASCII
letters, digits and ``_ . -``, starting with a letter or digit, at most 63 characters.
"""

from __future__ import annotations

import re

ID_MAX = 1024
ID_RE = re.compile(rf"[A-Za-z0-9_+.\-]{{1,{ID_MAX}}}")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def valid_id(cid: object) -> bool:
    """Is ``cid`` an id that may name a file or cgroup (one path component, never '..')?"""
    return isinstance(cid, str) and cid not in (".", "..") \
        and ID_RE.fullmatch(cid) is not None


def valid_name(name: object) -> bool:
    """Is ``name`` a jail name (see the module docstring)?"""
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None
