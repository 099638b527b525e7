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

from jailer import jails, state
from jailer.errors import JailerError

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
            "run": [os.path.join(f"/run/user/{pw.pw_uid}", "jailer", name),
                    f"/tmp/jailer-run-{pw.pw_uid}/{name}"]}


def _record_path(name: str) -> str:
    return os.path.join(jails.system_config_dir(), "delegated", name + ".toml")


def record(name: str) -> dict | None:
    import tomllib

    try:
        with open(_record_path(name), "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return None


def _makedirs_owned(path: str, uid: int, gid: int, mode: int = 0o700) -> None:
    """mkdir -p, giving every directory it creates to uid:gid."""
    missing = []
    p = path
    while not os.path.exists(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        os.mkdir(d, mode)
        os.chown(d, uid, gid)


def _merged_copy(d: dict, dst: str, uid_off: int, gid_off: int) -> None:
    """Copy what the jail sees as its root (image + its upper layer) to ``dst``, re-owned by
    the user's range: an image file of uid N becomes uid_off+N."""
    from jailer import cliopts, idshift

    source, _image = cliopts.resolve_rootfs(d.get("rootfs") or d["image"])
    upper = os.path.join(jails.jail_data_dir(d["name"]), "layer", "upper")
    if not (os.path.isdir(upper) and os.listdir(upper)):
        _copy(idshift, source, dst, uid_off, gid_off)
        return
    # the jail wrote files: mount image + upper read-only (an overlay of two lower layers
    # honours the upper's whiteouts) in a throw-away mount namespace and copy that view
    from jailer import syscalls as S

    view = os.path.join(jails.jail_data_dir(d["name"]), "view")
    os.makedirs(view, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys_ = S.Syscalls()
            sys_.unshare(S.CLONE_NEWNS)
            sys_.mount(None, "/", None, S.MS_REC | S.MS_PRIVATE)
            sys_.mount("overlay", view, "overlay", S.MS_RDONLY, f"lowerdir={upper}:{source}")
            _copy(idshift, view, dst, uid_off, gid_off)
            code = 0
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"jailer: delegate: copying the jail's files: {e}\n".encode())
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    os.rmdir(view)
    if status != 0:
        raise JailerError(f"delegate: could not copy jail {d['name']}'s files to {dst}")
    # files the container made are owned by the jail's own range: move them to the user's
    idshift.shift_in_place(dst, uid_off + d["uid_base"], uid_off, RANGE)


def _copy(idshift, src: str, dst: str, uid_off: int, gid_off: int) -> None:
    idshift.copy_shifted(src, dst, uid_off)
    if gid_off != uid_off:  # copy_shifted moves gids by the same offset: fix them
        _shift_gids(dst, uid_off, gid_off)


def _shift_gids(top: str, old: int, new: int) -> None:
    for root, dirs, files in os.walk(top):
        for n in [*dirs, *files, ""] if root == top else [*dirs, *files]:
            p = os.path.join(root, n) if n else root
            st = os.lstat(p)
            if old <= st.st_gid < old + RANGE:
                os.lchown(p, -1, new + st.st_gid - old)


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


def delegate(name: str, user: str) -> dict:
    """Hand jail ``name`` to ``user``; return the user's definition."""
    import cgroups
    from jailer import cliopts, lifecycle, subids
    from jailer.idpool import IdPool
    from jailer.initbin import monitor_binary

    _need_root("delegate")
    pw = _user(user)
    if pw.pw_uid == 0:
        raise JailerError("delegate: give the jail to a service user, not to root")
    d = jails.load(name)
    if lifecycle.status(name)["status"] != "stopped":
        raise JailerError(f"delegate: jail {name} is running: stop it first", exit_code=1)
    paths = user_paths(pw, name)
    if os.path.exists(paths["config"]):
        raise JailerError(f"delegate: {user} has a jail named {name} already")
    if d.get("net") == "bridge":  # the user's jail gets slirp4netns, which opens the tun device
        from jailer import network

        try:
            network.check_tun(pw.pw_uid, pw.pw_gid)
        except JailerError as e:
            raise JailerError(f"delegate: {e.message}", exit_code=1) from None
    ceiling = {k: v for k, v in d.get("run", {}).items() if k in cliopts.RESOURCE_OPTIONS}
    # the device cgroup is set here, by root, on the delegated parent: it holds for every
    # cgroup the user makes below it (the user's own starts may not set device rules)
    limits = cgroups.limits_from_options(**ceiling).replace(
        devices=list(cgroups.DEFAULT_DEVICES))
    uid_start, gid_start, added = subids.register(user, pw.pw_uid, RANGE)
    made: list = []
    try:
        try:
            cg = cgroups.open_manager(f"jailer-d-{name}").create(limits)
        except cgroups.CgroupError as e:
            raise JailerError(f"delegate: {e}", exit_code=1) from None
        made.append(cg)
        cg.delegate(pw.pw_uid, pw.pw_gid)
        jail_dir = paths["data"]
        _makedirs_owned(os.path.dirname(jail_dir), pw.pw_uid, pw.pw_gid, 0o755)
        os.mkdir(jail_dir, 0o755)
        made.append(jail_dir)
        os.chown(jail_dir, pw.pw_uid, pw.pw_gid)
        _merged_copy(d, os.path.join(jail_dir, "rootfs"), uid_start, gid_start)
        # the monitor, prebuilt: the user's first start need not compile it
        libexec = os.path.join(pw.pw_dir, ".local", "share", "jailer", "libexec")
        _makedirs_owned(libexec, pw.pw_uid, pw.pw_gid, 0o755)
        mon = monitor_binary(lifecycle._data())
        dst = os.path.join(libexec, os.path.basename(mon))
        if not os.path.exists(dst):
            shutil.copy2(mon, dst)
            os.chown(dst, pw.pw_uid, pw.pw_gid)
        mine = {k: v for k, v in d.items() if k not in ("image", "rootfs", "ip", "gateway",
                                                         "uid_base", "run")}
        mine.update(rootfs=os.path.join(jail_dir, "rootfs"), uid_base=uid_start,
                    gid_base=gid_start, owner=user, cgroup_parent=_parent_cgroup_text(cg),
                    net="slirp" if d.get("net") == "bridge" else d.get("net", "loopback"))
        mine["run"] = dict(d.get("run", {}))
        mine["ceiling"] = ceiling
        config_dir = os.path.dirname(os.path.dirname(paths["config"]))
        _makedirs_owned(os.path.join(config_dir, "jails"), pw.pw_uid, pw.pw_gid)
        jails.save(mine, config_dir, new=True)
        made.append(paths["config"])
        os.chown(paths["config"], pw.pw_uid, pw.pw_gid)
        rec_dir = os.path.dirname(_record_path(name))
        os.makedirs(rec_dir, mode=0o755, exist_ok=True)
        shutil.copy2(jails.definition_path(name), os.path.join(rec_dir, name + ".orig.toml"))
        rec = {"name": name, "user": user, "uid": pw.pw_uid, "uid_start": uid_start,
               "gid_start": gid_start, "subids_added": added, "cgroup": cg.name,
               "config": paths["config"], "data": jail_dir}
        with open(_record_path(name), "w") as f:
            f.write(jails.dumps(rec))
    except BaseException:
        for thing in reversed(made):
            if isinstance(thing, str) and thing.endswith(".toml"):
                os.unlink(thing)
            elif isinstance(thing, str):
                from jailer.fsutil import remove_tree

                remove_tree(thing)
            else:
                thing.delete()
        if added:
            subids.unregister(user, uid_start, gid_start, RANGE)
        raise
    # root's copy is gone: the jail is the user's now
    from jailer.fsutil import remove_tree

    remove_tree(jails.jail_data_dir(name))
    remove_tree(jails.jail_state_dir(name))
    if d.get("uid_base"):
        IdPool(os.path.join(lifecycle._data(), "idpool")).release(d["uid_base"])
    os.unlink(jails.definition_path(name))
    return mine


def undelegate(name: str) -> None:
    """Take the jail back: stop it, move its files back to root, remove the user's part."""
    import tomllib

    import cgroups
    from jailer import idshift, lifecycle, subids
    from jailer.fsutil import remove_tree
    from jailer.idpool import IdPool

    _need_root("undelegate")
    rec = record(name)
    if rec is None:
        raise JailerError(f"jail {name} is not delegated", exit_code=1)
    try:
        paths = user_paths(pwd.getpwnam(rec["user"]), name)
    except KeyError:  # the user is gone already: what the record says is enough
        uid = rec["uid"]
        paths = {"run": [f"/run/user/{uid}/jailer/{name}", f"/tmp/jailer-run-{uid}/{name}"]}
    cg = cgroups.open_manager(rec["cgroup"])
    _stop_user_jail(cg, paths["run"])
    orig = os.path.join(os.path.dirname(_record_path(name)), name + ".orig.toml")
    with open(orig, "rb") as f:
        d = tomllib.load(f)
    d["name"] = name
    # the jail's files come back as a rootfs of root's, owned by ids 0..65535 again
    mine = os.path.join(jails.jail_data_dir(name), "rootfs")
    os.makedirs(os.path.dirname(mine), mode=0o700, exist_ok=True)
    theirs = os.path.join(rec["data"], "rootfs")
    if os.path.isdir(theirs):
        shutil.move(theirs, mine)
        idshift.shift_in_place(mine, rec["uid_start"], 0, RANGE)
        if rec["gid_start"] != rec["uid_start"]:
            _shift_gids(mine, rec["gid_start"], 0)
        d.pop("image", None)
        d["rootfs"] = mine
    d["uid_base"] = IdPool(os.path.join(lifecycle._data(), "idpool")).allocate(
        owner=f"jail:{name}")
    jails.save(d)
    for run in paths["run"]:
        remove_tree(run)
        try:
            os.rmdir(os.path.dirname(run))  # the user's jailer run dir, if now empty
        except OSError:
            pass
    remove_tree(rec["data"])
    try:
        os.unlink(rec["config"])
    except FileNotFoundError:
        pass
    cg.delete()
    if rec.get("subids_added"):
        subids.unregister(rec["user"], rec["uid_start"], rec["gid_start"], RANGE)
    os.unlink(orig)
    os.unlink(_record_path(name))


def _stop_user_jail(cg, run_dirs: list[str]) -> None:
    """Kill whatever runs in the delegated cgroup and wait for the user's monitor to finish."""
    import time

    if cg.exists() and cg.procs():
        cg.kill()
    for run in run_dirs:
        st = state.read(run)
        if not st:
            continue
        deadline = time.monotonic() + 10
        while state.monitor_alive(st) and time.monotonic() < deadline:
            time.sleep(0.02)
