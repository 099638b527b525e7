"""Where jailer keeps things: system paths as root, XDG paths for an unprivileged user.

Below the data dir: ``images/`` (the image store), ``containers/<id>/`` (per-start upper
layers), ``starts/<id>`` (which runtime owns a start, for ``jailer gc``), ``idpool/`` (uid
ranges), ``seccomp/`` (compiled filters) and ``libexec/`` (the --init binary).
"""

from __future__ import annotations

import os
import stat

# the root-made parent of delegated users' runtime dirs (``delegate`` makes USER_RUN/UID)
USER_RUN = "/run/jailer-user"



def data_dir() -> str:
    """Persistent data (``$JAILER_DATA`` overrides)."""
    if os.environ.get("JAILER_DATA"):
        return os.environ["JAILER_DATA"]
    if os.geteuid() == 0:
        return "/var/lib/jailer"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "jailer")


def images_dir() -> str:
    return os.path.join(data_dir(), "images")


def user_run_dir(uid: int | None = None) -> str:
    """An unprivileged user's runtime dir, only where no other user can have made it:
    ``$XDG_RUNTIME_DIR/jailer``, ``/run/user/UID/jailer`` (logind's, the user's own), the
    ``/run/jailer-user/UID`` root made at ``delegate``, or last ``/tmp/jailer-run-UID`` when
    it is the user's own 0700 directory and not a symlink (it is made so when missing: /tmp
    is sticky, nobody else can replace it then). Anything else there is refused: another
    local user could have pre-created it to read or plant the user's state. Nothing is
    created here (``jailer list`` leaves no trace)."""
    from jailer.core.errors import JailerError

    uid = os.geteuid() if uid is None else uid
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "jailer")
    for top, parent_owner in ((f"/run/user/{uid}", None), (f"{USER_RUN}/{uid}", 0)):
        if _own_dir(top, uid, parent_owner):
            return os.path.join(top, "jailer") if top.startswith("/run/user/") else top
    tmp = f"/tmp/jailer-run-{uid}"
    try:
        st = os.lstat(tmp)
    except FileNotFoundError:
        return tmp  # made 0700 when something is stored (then checked: ``check_run_dir``)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == uid \
            and not stat.S_IMODE(st.st_mode) & 0o022 and stat.S_IMODE(st.st_mode) & 0o077 \
            and uid == os.geteuid():
        try:  # ours and never writable by others (an older jailer made it 0755): tighten it
            fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, 0o700)
                st = os.fstat(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
    if st is None or not stat.S_ISDIR(st.st_mode) or st.st_uid != uid \
            or stat.S_IMODE(st.st_mode) & 0o077:
        what = ("a symlink" if st is not None and stat.S_ISLNK(st.st_mode) else
                f"owned by uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}" if st else
                "not there")
        raise JailerError(f"refusing the runtime dir {tmp}: it is not your own 0700 "
                          f"directory ({what}; another user may have made it): remove it, "
                          "or set XDG_RUNTIME_DIR", errno=1, exit_code=1)
    return tmp


def _own_dir(path: str, uid: int, parent_owner: int | None) -> bool:
    """Is ``path`` a real directory of ``uid`` (not a symlink), below a real directory of
    ``parent_owner`` when given?"""
    try:
        st = os.lstat(path)
        if parent_owner is not None:
            pst = os.lstat(os.path.dirname(path))
            if not stat.S_ISDIR(pst.st_mode) or pst.st_uid != parent_owner \
                    or stat.S_IMODE(pst.st_mode) & 0o022:
                return False
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid


def check_run_dir(made: str, *, make: bool = False) -> None:
    """Around making ``made`` (a jail's state dir) as a user: when it is below
    ``/tmp/jailer-run-UID``, that dir is made 0700 first (``make``) and must be the user's
    own 0700 one after, even if another user made it between the look-up and the mkdir
    (then nothing is stored there)."""
    tmp = f"/tmp/jailer-run-{os.geteuid()}"
    if os.geteuid() == 0 or os.path.dirname(os.path.normpath(made)) != tmp \
            or os.environ.get("JAILER_RUN"):
        return
    if make:
        try:
            os.mkdir(tmp, 0o700)
        except FileExistsError:
            pass
    user_run_dir()
