"""Hand a named jail to a service user (``jailer delegate NAME --to USER``) and take it back.

What root does at delegation, so that the user can then run the jail without root:

* registers subordinate uid/gid ranges for the user in /etc/subuid and /etc/subgid (reusing
  theirs if they have 65536 already); their starts map the jail's root onto them with the
  setuid helpers newuidmap/newgidmap;
* copies the jail's files (the image with the jail's upper layer on top) into the user's data
  dir, owned by that range, so the container's root owns them without idmapped mounts (which
  an unprivileged user cannot make);
* makes a cgroup for the jail below root's own, with the limits root set, and delegates it:
  the user can create the jail's cgroup inside and lower its limits, never raise them; its
  device cgroup (deny all but the runtime-spec's default devices) holds for all below it;
* moves the definition into the user's config dir (``~/.config/jailer/jails``), with
  ``net = "slirp"`` (user-mode networking: an unprivileged user cannot plug a veth into root's
  bridge, and slirp4netns needs no privileges; published ports still answer on 127.0.0.1);
* keeps a record in ``/etc/jailer/delegated/NAME.toml`` (and the original definition), which
  ``undelegate`` uses to put everything back.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass, field

from jailer.core import paths
from jailer.core.errors import JailerError
from jailer.frontends import jaildef
from jailer.kernel import fsutil, proc
from jailer.objects import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cgroups import Cgroup, Limits

RANGE = 65536


def _need_root(verb: str) -> None:
    if os.geteuid() != 0:
        raise JailerError(f"{verb}: only root can do this", errno=1, exit_code=1)


def _user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise JailerError(f"unknown user {name!r}", errno=2, exit_code=1) from None


def user_paths(pw: pwd.struct_passwd, name: str) -> dict[str, str]:
    """Where the user's jailer looks (its defaults: no XDG overrides are known to root)."""
    return {"config": os.path.join(pw.pw_dir, ".config", "jailer", "jails", name + ".toml"),
            "data": os.path.join(pw.pw_dir, ".local", "share", "jailer", "jails", name),
            "run": run_dirs(pw.pw_uid, name)}


def run_dirs(uid: int, name: str) -> list[str]:
    """Every runtime dir the user's jailer may use for jail ``name`` (``paths.user_run_dir``
    less the XDG override root cannot know)."""
    return [f"/run/user/{uid}/jailer/{name}", f"{paths.USER_RUN}/{uid}/{name}",
            f"/tmp/jailer-run-{uid}/{name}"]


def _orig_path(name: str) -> str:
    """Root's definition of the jail as it was before ``delegate`` (beside the record)."""
    return os.path.join(os.path.dirname(jaildef.delegated_path(name)), name + ".orig.toml")


def _open_user_dir(path: str, uid: int, verb: str, **kw) -> int:
    """An fd of a directory in the user's reach, opened as ``fsutil.open_dir`` does: no
    symlinks, every component root's or the user's; one clear error otherwise."""
    try:
        return fsutil.open_dir(path, uid, **kw)
    except fsutil.UnsafePath as e:
        raise JailerError(f"{verb}: {e.message}", errno=e.errno, exit_code=1) from None
    except OSError as e:
        raise JailerError(f"{verb}: {path}: {e.strerror}", errno=e.errno or 0,
                          exit_code=1) from None


def _id_map(off: int, bases: tuple[int, ...]):
    """An id of one of the ranges at ``bases`` -> the same id of the range at ``off``; any
    other id becomes the range's nobody (65534)."""
    def shift(i: int) -> int:
        for b in bases:
            if b <= i < b + RANGE:
                return off + i - b
        return off + 65534
    return shift


def _merged_copy(d: dict, dst_fd: int, dst: str, uid_off: int, gid_off: int) -> None:
    """Copy what the jail sees as its root (image + its upper layer) to ``dst`` in
    ``dst_fd``, re-owned by the user's range (an image file of uid N becomes uid_off+N, a
    file the jail's root made, of its pool range, the same), as a plain copy: no device
    nodes, no setuid/setgid bits, no host file capabilities."""
    from jailer.engine import idshift
    from jailer.frontends import cliopts

    source, _image = cliopts.resolve_rootfs(d.get("rootfs") or d["image"])
    bases = (0, d["uid_base"]) if d.get("uid_base") else (0,)
    maps = {"uid_map": _id_map(uid_off, bases), "gid_map": _id_map(gid_off, bases)}
    upper = os.path.join(jaildef.jail_data_dir(d["name"]), "layer", "upper")
    if not (os.path.isdir(upper) and os.listdir(upper)):
        idshift.copy_shifted(source, dst, 0, dst_dir_fd=dst_fd, plain=True, **maps)
        return
    # the jail wrote files: mount image + upper read-only (an overlay of two lower layers
    # honours the upper's whiteouts) in a throw-away mount namespace and copy that view
    from jailer.kernel import syscalls as S

    view = os.path.join(jaildef.jail_data_dir(d["name"]), "view")
    os.makedirs(view, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys_ = S.Syscalls()
            sys_.unshare(S.CLONE_NEWNS)
            sys_.mount(None, "/", None, S.MS_REC | S.MS_PRIVATE)
            sys_.mount("overlay", view, "overlay", S.MS_RDONLY, f"lowerdir={upper}:{source}")
            idshift.copy_shifted(view, dst, 0, dst_dir_fd=dst_fd, plain=True, **maps)
            code = 0
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"jailer: delegate: copying the jail's files: {e}\n".encode())
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    os.rmdir(view)
    if status != 0:
        raise JailerError(f"delegate: could not copy jail {d['name']}'s files")


def _user_run_parent(uid: int, gid: int) -> bool:
    """``/run/jailer-user/UID``: the user's runtime dir below a parent only root can write,
    so no other local user can have made it (as anyone can make /tmp/jailer-run-UID).
    True if it was made now."""
    top, leaf = os.path.split(paths.USER_RUN)
    pfd = _open_user_dir(top, 0, "delegate")
    try:
        fd = fsutil.open_dir(leaf, 0, dir_fd=pfd, create=True, mode=0o755)
    finally:
        os.close(pfd)
    try:
        os.fchmod(fd, 0o755)
        made = True
        try:
            os.mkdir(str(uid), 0o700, dir_fd=fd)
        except FileExistsError:
            made = False
        ufd = os.open(str(uid), fsutil.DIR_FLAGS, dir_fd=fd)
        try:
            os.fchown(ufd, uid, gid)
            os.fchmod(ufd, 0o700)
        finally:
            os.close(ufd)
    finally:
        os.close(fd)
    return made


def _parent_cgroup_text(cg) -> str:
    """The delegated cgroup, written the way /proc/self/cgroup names a process's cgroups:
    the user's starts read it to put the jail's cgroup below this one."""
    out = []
    paths = getattr(cg, "paths", None)  # v1: controller -> directory
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if paths:
                for c in ctrls.split(","):
                    if c in paths:
                        path = "/" + os.path.relpath(paths[c], os.path.join(cg.root, c))
                        break
            elif hid == "0":
                path = "/" + os.path.relpath(cg.path, cg.root)
            out.append(f"{hid}:{ctrls}:{path}")
    return "\n".join(out) + "\n"


@dataclass
class _Handover:
    """One ``delegate`` under way: what it checked, the user's directory fds it holds and
    the steps that undo what it made so far (run in reverse when a later step fails)."""

    name: str
    user: str
    pw: pwd.struct_passwd
    d: dict  # root's definition of the jail
    paths: dict[str, str]  # user_paths
    ceiling: dict  # the resource options root set: the user's starts cannot go above
    limits: Limits  # of the delegated cgroup: the ceiling and the device rules
    fds: list[int] = field(default_factory=list)
    undo: list = field(default_factory=list)
    dirs: dict[str, int] = field(default_factory=dict)  # fds of the user's dirs
    ids: tuple[int, int, bool] = (0, 0, False)  # subids.register: uid/gid start, added
    cg: Cgroup | None = None
    files: str = ""  # the jail's files in the user's jails dir: the staging name, then NAME

    @property
    def uid(self) -> int:
        return self.pw.pw_uid

    @property
    def gid(self) -> int:
        return self.pw.pw_gid

    def roll_back(self) -> None:
        from jailer.engine import subids

        for step in reversed(self.undo):
            try:
                step()
            except Exception:  # noqa: BLE001 - undo what can be undone, report the cause
                pass
        uid_start, gid_start, added = self.ids
        if added:
            subids.unregister(self.user, uid_start, gid_start, RANGE)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def delegate(name: str, user: str) -> dict:
    """Hand jail ``name`` to ``user``; return the user's definition.

    Everything root does in the user's home goes through directory fds opened without
    following a symlink, through components of root's or the user's only. The jail's files
    are built in a fresh root-owned 0700 directory there (out of the user's reach while it
    fills), then given to the user's range and renamed into place last. On any failure
    nothing is left behind; on success root's own copy of the jail goes."""
    h = _check_handover(name, user)
    try:
        _open_users_dirs(h)
        _allocate_ids(h)
        _hand_over_cgroup(h)
        _make_users_run_dir(h)
        _build_files(h)
        _install_monitor(h)
        mine = _users_definition(h)
        _write_users_definition(h, mine)
        _place_files(h)
        _write_record(h)
    except BaseException:
        h.roll_back()
        raise
    finally:
        h.close()
    _forget_roots_copy(h.d)
    return mine


def _check_handover(name: str, user: str) -> _Handover:
    """Root, a service user, a stopped jail, no jail of that name of the user's, the tun
    device usable by the user (for slirp); the delegated cgroup's limits."""
    import cgroups
    from jailer.frontends import cliopts
    from jailer.objects import lifecycle

    _need_root("delegate")
    pw = _user(user)
    if pw.pw_uid == 0:
        raise JailerError("delegate: give the jail to a service user, not to root")
    d = jaildef.load(name)
    if lifecycle.status(name)["status"] != "stopped":
        raise JailerError(f"delegate: jail {name} is running: stop it first", exit_code=1)
    paths_ = user_paths(pw, name)
    if os.path.lexists(paths_["config"]):
        raise JailerError(f"delegate: {user} has a jail named {name} already")
    if d.get("net") == "bridge":  # the user's jail gets slirp4netns, which opens the tun device
        from jailer.objects import network

        try:
            network.check_tun(pw.pw_uid, pw.pw_gid)
        except JailerError as e:
            raise JailerError(f"delegate: {e.message}", exit_code=1) from None
    ceiling = {k: v for k, v in d.get("run", {}).items() if k in cliopts.RESOURCE_OPTIONS}
    # the device cgroup is set here, by root, on the delegated parent: it holds for every
    # cgroup the user makes below it (the user's own starts may not set device rules)
    limits = cgroups.limits_from_options(**ceiling).replace(
        devices=list(cgroups.DEFAULT_DEVICES))
    return _Handover(name=name, user=user, pw=pw, d=d, paths=paths_, ceiling=ceiling,
                     limits=limits)


def _open_users_dirs(h: _Handover) -> None:
    """The user's home, jails data, config and libexec dirs (made, the user's, when
    missing); no files of a jail of that name there yet."""
    home = _open_user_dir(h.pw.pw_dir, h.uid, "delegate")
    h.fds.append(home)
    for key, rel, mode in (("jails", ".local/share/jailer/jails", 0o755),
                           ("config", ".config/jailer/jails", 0o700),
                           ("libexec", ".local/share/jailer/libexec", 0o755)):
        fd = _open_user_dir(rel, h.uid, "delegate", dir_fd=home, create=True, mode=mode,
                            chown=(h.uid, h.gid))
        h.fds.append(fd)
        h.dirs[key] = fd
    if _exists_at(h.dirs["jails"], h.name):
        raise JailerError(f"delegate: {h.user} has files of a jail named {h.name} already "
                          f"({h.paths['data']})", exit_code=1)


def _allocate_ids(h: _Handover) -> None:
    """The user's subordinate uid/gid range (theirs if they have one of RANGE ids)."""
    from jailer.engine import subids

    h.ids = subids.register(h.user, h.uid, RANGE)


def _hand_over_cgroup(h: _Handover) -> None:
    """A cgroup below root's own with the jail's limits, delegated to the user."""
    import cgroups

    try:
        h.cg = cgroups.open_manager(f"jailer-d-{h.name}").create(h.limits)
    except cgroups.CgroupError as e:
        raise JailerError(f"delegate: {e}", exit_code=1) from None
    h.undo.append(h.cg.delete)
    h.cg.delegate(h.uid, h.gid)


def _make_users_run_dir(h: _Handover) -> None:
    """The user's runtime dir below ``paths.USER_RUN`` (removed again, if made now and
    still empty, when a later step fails)."""
    if _user_run_parent(h.uid, h.gid):
        h.undo.append(lambda: _rmdir_user_path(f"{paths.USER_RUN}/{h.uid}", h.uid))


def _build_files(h: _Handover) -> None:
    """The jail's files, re-owned by the user's range, in a root-owned 0700 staging dir of
    the user's jails dir (where the user cannot reach them yet)."""
    jails_fd = h.dirs["jails"]
    h.files = f".{h.name}.delegating-{os.getpid()}"
    os.mkdir(h.files, 0o700, dir_fd=jails_fd)
    h.undo.append(lambda: fsutil.remove_at(jails_fd, h.files))
    sfd = os.open(h.files, fsutil.DIR_FLAGS, dir_fd=jails_fd)
    h.fds.append(sfd)
    h.dirs["staging"] = sfd
    if os.fstat(sfd).st_uid != 0:
        raise JailerError(f"delegate: {h.paths['data']}: the staging dir was swapped")
    uid_start, gid_start, _added = h.ids
    _merged_copy(h.d, sfd, "rootfs", uid_start, gid_start)


def _install_monitor(h: _Handover) -> None:
    """The monitor, prebuilt, in the user's libexec: their first start need not compile it."""
    from jailer.engine.initbin import monitor_binary

    mon = monitor_binary(paths.data_dir())
    libexec_fd = h.dirs["libexec"]
    if _exists_at(libexec_fd, os.path.basename(mon)):
        return
    with open(mon, "rb") as f:
        binary = f.read()
    try:
        fsutil.write_file_at(libexec_fd, os.path.basename(mon), binary, mode=0o755,
                             owner=(h.uid, h.gid))
    except FileExistsError:
        pass


def _users_definition(h: _Handover) -> dict:
    """The user's definition: root's, on the user's copy of the files, ids and cgroup;
    user-mode networking instead of root's bridge; root's resource options as the ceiling."""
    d = h.d
    uid_start, gid_start, _added = h.ids
    mine = {k: v for k, v in d.items() if k not in ("image", "rootfs", "ip", "gateway",
                                                     "uid_base", "run")}
    mine.update(rootfs=os.path.join(h.paths["data"], "rootfs"), uid_base=uid_start,
                gid_base=gid_start, owner=h.user, cgroup_parent=_parent_cgroup_text(h.cg),
                net="slirp" if d.get("net") == "bridge" else d.get("net", "loopback"))
    mine["run"] = dict(d.get("run", {}))
    mine["ceiling"] = h.ceiling
    return mine


def _write_users_definition(h: _Handover, mine: dict) -> None:
    config_fd, name = h.dirs["config"], h.name
    try:
        fsutil.write_file_at(config_fd, name + ".toml", jaildef.dumps(mine).encode(),
                             owner=(h.uid, h.gid))
    except FileExistsError:
        raise JailerError(f"delegate: {h.user} has a jail named {name} already") from None
    h.undo.append(lambda: os.unlink(name + ".toml", dir_fd=config_fd))


def _place_files(h: _Handover) -> None:
    """Hand over, last: the staging dir becomes the user's and is renamed into place (and
    must be the same directory there after)."""
    jails_fd, sfd, name = h.dirs["jails"], h.dirs["staging"], h.name
    os.fchown(sfd, h.uid, h.gid)
    os.fchmod(sfd, 0o755)
    os.rename(h.files, name, src_dir_fd=jails_fd, dst_dir_fd=jails_fd)
    h.files = name  # what a failure from here on removes
    placed = os.open(name, fsutil.DIR_FLAGS, dir_fd=jails_fd)
    try:
        if os.fstat(placed).st_ino != os.fstat(sfd).st_ino:
            raise JailerError(f"delegate: {h.paths['data']} was swapped while being handed "
                              "over")
    finally:
        os.close(placed)


def _write_record(h: _Handover) -> None:
    """Root's record (``jaildef.delegated_path``) and the original definition beside it:
    what ``undelegate`` puts back."""
    name = h.name
    uid_start, gid_start, added = h.ids
    rec_dir = os.path.dirname(jaildef.delegated_path(name))
    os.makedirs(rec_dir, mode=0o755, exist_ok=True)
    h.undo.append(lambda: os.unlink(_orig_path(name)))
    shutil.copy2(jaildef.definition_path(name), _orig_path(name))
    h.undo.append(lambda: os.unlink(jaildef.delegated_path(name)))
    rec = {"name": name, "user": h.user, "uid": h.uid, "uid_start": uid_start,
           "gid_start": gid_start, "subids_added": added, "cgroup": h.cg.name,
           "config": h.paths["config"], "data": h.paths["data"]}
    with open(jaildef.delegated_path(name), "w") as f:
        f.write(jaildef.dumps(rec))


def _forget_roots_copy(d: dict) -> None:
    """Root's copy is gone: the jail is the user's now (files, state, uid range, definition)."""
    from jailer.engine.idpool import IdPool

    name = d["name"]
    fsutil.remove_tree(jaildef.jail_data_dir(name))
    fsutil.remove_tree(jaildef.jail_state_dir(name))
    if d.get("uid_base"):
        IdPool(os.path.join(paths.data_dir(), "idpool")).release(d["uid_base"])
    os.unlink(jaildef.definition_path(name))


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _warn(msg: str) -> None:
    import sys

    print(f"jailer: warning: {msg}", file=sys.stderr)


def undelegate(name: str) -> None:
    """Take the jail back: stop it, copy its files back to root, remove the user's part.

    The user's tree is read and removed through fds (no symlink followed, no component of
    another user's, no other filesystem entered); what is not safe to read (a symlink
    planted on the way) is not taken back: the jail then gets its original image."""
    import tomllib

    import cgroups
    from jailer.engine import subids
    from jailer.engine.idpool import IdPool

    _need_root("undelegate")
    rec = jaildef.delegated_record(name)
    if rec is None:
        raise JailerError(f"jail {name} is not delegated", exit_code=1)
    runs = run_dirs(rec["uid"], name)
    cg = cgroups.open_manager(rec["cgroup"])
    _stop_user_jail(cg, runs, rec["uid"])
    with open(_orig_path(name), "rb") as f:
        d = tomllib.load(f)
    d["name"] = name
    _take_files_back(d, rec)
    d["uid_base"] = IdPool(os.path.join(paths.data_dir(), "idpool")).allocate(
        owner=f"jail:{name}")
    jaildef.save(d)
    _remove_users_part(name, rec, runs)
    cg.delete()
    if rec.get("subids_added"):
        subids.unregister(rec["user"], rec["uid_start"], rec["gid_start"], RANGE)
    os.unlink(_orig_path(name))
    os.unlink(jaildef.delegated_path(name))


def _take_files_back(d: dict, rec: dict) -> None:
    """The user's copy of the jail's files becomes a rootfs of root's again (ids 0..65535),
    set in ``d``; a copy not safe to read is left (``d`` keeps its original image)."""
    from jailer.engine import idshift

    uid = rec["uid"]
    mine_dir = jaildef.jail_data_dir(d["name"])
    os.makedirs(mine_dir, mode=0o700, exist_ok=True)
    fsutil.remove_tree(os.path.join(mine_dir, "rootfs"))
    try:  # the user's jail dir, then its rootfs (owned by the jail's root, in their range)
        theirs = fsutil.open_dir(os.path.join(rec["data"], "rootfs"),
                                 (uid, rec["uid_start"]))
    except fsutil.UnsafePath as e:
        _warn(f"undelegate: not taking the user's files back: {e.message}")
        return
    except OSError:
        return
    mfd = os.open(mine_dir, fsutil.DIR_FLAGS)
    try:
        idshift.copy_shifted(theirs, "rootfs", 0, dst_dir_fd=mfd,
                             uid_map=_id_map(0, (rec["uid_start"],)),
                             gid_map=_id_map(0, (rec["gid_start"],)), devices=False)
    finally:
        os.close(mfd)
        os.close(theirs)
    d.pop("image", None)
    d["rootfs"] = os.path.join(mine_dir, "rootfs")


def _remove_users_part(name: str, rec: dict, runs: list[str]) -> None:
    """The user's state, runtime dirs (when now empty), files and definition of the jail."""
    uid = rec["uid"]
    for run in runs:
        _remove_user_path(run, uid)
    others = [r for r in _records() if r.get("uid") == uid and r.get("name") != name]
    for top in (f"/run/user/{uid}/jailer", f"/tmp/jailer-run-{uid}") + (
            () if others else (f"{paths.USER_RUN}/{uid}",)):
        _rmdir_user_path(top, uid)  # the user's jailer run dir, if now empty
    _remove_user_path(rec["data"], uid)
    _remove_user_path(rec["config"], uid)


def names() -> list[str]:
    """The jails root has handed to users (one record each, ``jaildef.delegated_path``)."""
    d = os.path.dirname(jaildef.delegated_path("x"))
    return [e[:-5] for e in (sorted(os.listdir(d)) if os.path.isdir(d) else ())
            if e.endswith(".toml") and not e.endswith(".orig.toml")]


def record_or_empty(name: str) -> dict:
    """Root's record of delegated jail ``name``; {} when missing or unreadable."""
    try:
        return jaildef.delegated_record(name) or {}
    except JailerError:
        return {}


def _records() -> list[dict]:
    return [record_or_empty(n) for n in names()]


def _remove_user_path(path: str, uid: int) -> None:
    """Remove ``path`` (a tree or file in the user's reach) fd-based; a path that runs
    through a symlink or another user's directory is left alone (with a warning)."""
    import errno

    for attempt in range(5):
        try:
            fsutil.remove_tree(path, uid)
            return
        except fsutil.UnsafePath as e:
            _warn(f"undelegate: not removing {path}: {e.message}")
            return
        except OSError as e:
            if e.errno == errno.ENOTEMPTY and attempt < 4:
                continue  # the user adds entries while we remove: go again
            _warn(f"undelegate: not removing {path}: {e.strerror}")
            return


def _rmdir_user_path(path: str, uid: int) -> None:
    try:
        fd, leaf = fsutil.open_parent(path, uid)
    except (OSError, fsutil.UnsafePath):
        return
    try:
        os.rmdir(leaf, dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _stop_user_jail(cg, runs: list[str], uid: int) -> None:
    """Kill whatever runs in the delegated cgroup and wait for the user's monitor to finish.
    The monitor's pid comes from the user's state file: it is waited for only while it is
    a process of that user."""
    import time

    if cg.exists() and cg.procs():
        cg.kill()
    for run in runs:
        st = state.read_untrusted(run, uid)
        if not st:
            continue
        deadline = time.monotonic() + 10
        while state.monitor_alive(st) and _process_uid(state.monitor_pid(st)) == uid \
                and time.monotonic() < deadline:
            time.sleep(0.02)


def _process_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid if pid > 0 else None
    except OSError:
        return None


def observe_user_state(rec: dict) -> dict:
    """Root's view of a delegated jail's state: read fd-based from the user's run dir, and
    believed only as far as the kernel confirms it: a pid counts only while it is in the
    cgroup root made for the jail; paused is read from that pid's own freezer (found via
    /proc, never a path from the file)."""
    import cgroups

    st: dict = {}
    for run in run_dirs(rec.get("uid", -1), rec.get("name", "")):
        st = state.read_untrusted(run, rec.get("uid", -1)) or {}
        if st:
            break
    st.setdefault("status", "stopped")
    if st["status"] == "stopped":
        return st
    pid = st.get("pid", 0)
    try:
        cg = cgroups.open_manager(rec["cgroup"])
        inside = proc.alive(pid, st.get("pid_start"), st.get("boot_id")) \
            and pid in cg.procs()
    except (cgroups.CgroupError, KeyError, OSError, ValueError):
        inside = False
    if not inside:
        return {**st, "status": "stopped", "pid": 0}
    st["status"] = "paused" if _pid_frozen(cg, pid) else "running"
    return st


def _pid_frozen(cg, pid: int) -> bool:
    """Is ``pid`` (known to be inside ``cg``) frozen, by its own cgroup's freezer?"""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return False
    v1 = getattr(cg, "paths", None)
    for hid, ctrls, rel in lines:
        if v1 is not None and "freezer" in ctrls.split(",") and "freezer" in v1:
            path = os.path.join(cg.root, "freezer", rel.lstrip("/"), "freezer.state")
        elif v1 is None and hid == "0":
            path = os.path.join(cg.root, rel.lstrip("/"), "cgroup.freeze")
        else:
            continue
        if ".." in rel.split("/"):
            return False
        return state.frozen(path)
    return False
