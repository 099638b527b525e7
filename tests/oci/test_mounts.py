"""Root and mounts (config.md "Root" and "Mounts", config-linux.md "Rootfs Mount Propagation"):
an image without its mount points, read-only or not; propagation of the root and of binds;
every option combination a mount may list, recursive attributes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import set_config

pytestmark = pytest.mark.root

MOUNT_POINTS = ("proc", "sys", "dev")


def mountinfo(text: str) -> dict[str, dict]:
    """/proc/self/mountinfo lines -> {mount point: {"options", "optional", "fstype"}} (the
    last mount on each point)."""
    out = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        if len(f) < 6:
            continue
        out[f[4]] = {"options": set(f[5].split(",")), "optional": f[6:],
                     "fstype": right.split()[0]}
    return out


def run_in(oci, bundle: Path, script: str, cid: str = "m1") -> str:
    set_config(bundle, process__args=["sh", "-c", script])
    r = oci("run", "--bundle", str(bundle), cid)
    assert r.returncode == 0, r.stderr
    return r.stdout


def strip_mount_points(rootfs: Path) -> None:
    """A pause image: no /proc, /sys, /dev (so no /dev/pts, /dev/shm, /dev/mqueue)."""
    for name in MOUNT_POINTS:
        shutil.rmtree(rootfs / name)


@pytest.fixture
def host_mounts():
    """mount(8) on the test's side; every mount made is undone (last first)."""
    made: list[str] = []

    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True)
        if "--make-shared" not in args:
            made.append(args[-1])

    yield mount
    for target in reversed(made):
        subprocess.run(["umount", "-l", target], check=False)


# ── the root: mount points first, read-only last ────────────────────────────────────────────
@pytest.mark.vm
@pytest.mark.parametrize("readonly", [True, False], ids=["ro-root", "rw-root"])
def test_image_without_mount_points(oci, bundle, readonly):
    """containerd's pod sandbox: root.readonly and a pause image with no /proc, /sys, /dev:
    every mount point is made first, the root made read-only last (as runc does)."""
    strip_mount_points(bundle / "rootfs")
    set_config(bundle, root__readonly=readonly)
    out = run_in(oci, bundle, "cat /proc/self/mountinfo; ls -d /sys/kernel /dev/pts/ptmx "
                              ">/dev/null && echo dirs-ok; touch /new 2>/dev/null && echo wrote;"
                              " true")
    mounts = mountinfo(out)
    for point, fstype in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "tmpfs"),
                          ("/dev/pts", "devpts"), ("/dev/shm", "tmpfs"),
                          ("/dev/mqueue", "mqueue")):
        assert mounts[point]["fstype"] == fstype, point
    assert "dirs-ok" in out
    assert ("ro" in mounts["/"]["options"]) is readonly
    assert ("wrote" in out) is not readonly
    assert all((bundle / "rootfs" / n).is_dir() for n in MOUNT_POINTS)


@pytest.mark.parametrize("name,link", [("proc", "/hostile"), ("sys", "../../hostile"),
                                       ("dev", "/hostile")])
def test_symlinked_mount_point_is_refused(oci, bundle, tmp_path, name, link):
    """A hostile image's symlink at a mount point is never followed (nothing is made where
    it points, inside the root or out); the same image without it (the control) starts."""
    rootfs = bundle / "rootfs"
    strip_mount_points(rootfs)
    set_config(bundle, root__readonly=True, process__args=["true"])
    os.symlink(link, rootfs / name)
    r = oci("run", "--bundle", str(bundle), "m2")
    assert r.returncode != 0
    assert f"{name} must be mounted on an ordinary directory" in r.stderr
    assert not (rootfs / "hostile").exists() and not Path("/hostile").exists()
    assert not (tmp_path / "hostile").exists()
    (rootfs / name).unlink()  # the control
    assert oci("run", "--bundle", str(bundle), "m3").returncode == 0
    assert (rootfs / name).is_dir() and not (rootfs / name).is_symlink()


# ── the config's order ──────────────────────────────────────────────────────────────────
USERNS_MAPS = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def with_user_namespace(cfg: dict) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = USERNS_MAPS


def out_of_order(cfg: dict, text: str) -> list[str]:
    """The config's mounts that /proc/self/mountinfo does not list in the config's order
    (each matched to the first unmatched line on its mount point, as the runtime-tools
    suite matches them)."""
    points = [line.split()[4] for line in text.splitlines() if " - " in line]
    used: set[int] = set()
    last, wrong = -1, []
    for m in cfg["mounts"]:
        at = next(i for i, p in enumerate(points) if p == m["destination"] and i not in used)
        used.add(at)
        if at < last:
            wrong.append(m["destination"])
        last = max(last, at)
    return wrong


@pytest.mark.vm
@pytest.mark.parametrize("userns", [False, True], ids=["host-ids", "userns"])
def test_mounts_listed_in_the_config_order(oci, bundle, tmp_path, userns):
    """mountinfo lists the config's mounts in its order, host-side ones (binds, tmpfs)
    between the namespace-side ones (proc, devpts, mqueue, sysfs, cgroup) where the config
    puts them, nested ones inside their parents, a file's bind too (runtime-tools checks
    this order)."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = json.loads((bundle / "config.json").read_text())
    mounts = cfg["mounts"]
    at = {m["destination"]: i for i, m in enumerate(mounts)}
    mounts.insert(at["/sys"] + 1, {"destination": "/home", "type": "bind",
                                   "source": str(data), "options": ["rbind", "ro"]})
    mounts.insert(at["/dev/mqueue"] + 1, {"destination": "/dev/extra", "type": "tmpfs",
                                          "source": "tmpfs", "options": ["size=64k"]})
    (tmp_path / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    mounts.insert(at["/proc"] + 1, {"destination": "/etc/passwd", "type": "bind",
                                    "source": str(tmp_path / "passwd"), "options": ["bind"]})
    mounts.insert(0, {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    mounts.append({"destination": "/mnt", "type": "bind", "source": str(data),
                   "options": ["bind"]})
    if userns:
        with_user_namespace(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))
    text = run_in(oci, bundle, "cat /proc/self/mountinfo")
    assert out_of_order(cfg, text) == [], text
    assert mountinfo(text)["/dev/extra"]["fstype"] == "tmpfs"


def test_read_only_bind_stays_read_only_for_a_user_namespace_root(oci, bundle, tmp_path):
    """A read-only bind of a host directory stays read-only for the root of a user
    namespace holding CAP_SYS_ADMIN: its mount is made before the user namespace (so the
    kernel locks its flags), and its copy put back in the config's order keeps the lock.
    Control: the same remount of a read-only mount the container makes itself works."""
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 200000, 200000)  # writable by the container's root, if the mount were
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["mounts"].append({"destination": "/home", "type": "bind", "source": str(data),
                          "options": ["rbind", "ro"]})
    with_user_namespace(cfg)
    caps = cfg["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted({*caps.get(kind, []), "CAP_SYS_ADMIN"})
    (bundle / "config.json").write_text(json.dumps(cfg))
    out = run_in(oci, bundle, "mkdir /dev/c && mount -t tmpfs t /dev/c && "
                              "mount -o remount,bind,ro /dev/c && "
                              "mount -o remount,bind,rw /dev/c && touch /dev/c/x && echo control; "
                              "mount -o remount,bind,rw /home 2>/dev/null && echo remounted; "
                              "touch /home/new 2>/dev/null && echo wrote; true")
    assert out.split() == ["control"]
    assert os.listdir(data) == []


# ── propagation ───────────────────────────────────────────────────────────────────────────
PROPAGATION = [("shared", "shared:"), ("rshared", "shared:"), ("slave", None),
               ("rslave", None), ("private", None), ("rprivate", None),
               ("unbindable", "unbindable"), ("runbindable", "unbindable")]


def test_rootfs_propagation(oci, bundle):
    """Every linux.rootfsPropagation value starts (pivot_root refuses a shared root, so the
    propagation is set after it), and the root shows it."""
    for i, (prop, field) in enumerate(PROPAGATION):
        set_config(bundle, linux__rootfsPropagation=prop)
        root = mountinfo(run_in(oci, bundle, "cat /proc/self/mountinfo", f"p{i}"))["/"]
        shown = " ".join(root["optional"])
        if field:
            assert field in shown, (prop, shown)
        else:
            assert "shared:" not in shown and "unbindable" not in shown, (prop, shown)


def test_root_on_a_shared_mount_point(oci, bundle, tmp_path, host_mounts):
    """containerd's layout: the root is a mount point of its own (the overlay at
    bundle/rootfs) on a shared host. The container's root is a slave of it (master:N, as
    under runc), and pivot_root still works, also with rootfsPropagation rshared."""
    saved = tmp_path / "saved"
    shutil.move(bundle / "rootfs", saved)
    (bundle / "rootfs").mkdir()
    host_mounts("-t", "tmpfs", "tmpfs", str(bundle / "rootfs"))
    host_mounts("--make-shared", str(bundle / "rootfs"))
    subprocess.run(["cp", "-a", f"{saved}/.", str(bundle / "rootfs")], check=True)
    root = mountinfo(run_in(oci, bundle, "cat /proc/self/mountinfo", "s1"))["/"]
    assert any(f.startswith("master:") for f in root["optional"]), root
    set_config(bundle, linux__rootfsPropagation="rshared")
    root = mountinfo(run_in(oci, bundle, "cat /proc/self/mountinfo", "s2"))["/"]
    assert any(f.startswith("shared:") for f in root["optional"]), root


@pytest.mark.parametrize("prop", ["rslave", "rshared", "slave"])
def test_bind_receives_host_mounts_made_after_start(oci, bundle, tmp_path, host_mounts,
                                                    prop):
    """A bind of a shared host directory with rslave/rshared is a slave of it (mountinfo's
    master:N, as under runc): a mount made on the host under its source after the start
    shows inside."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    host_mounts("-t", "tmpfs", "tmpfs", str(src))
    host_mounts("--make-shared", str(src))
    (src / "sub").mkdir()
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["mounts"] += [
        {"destination": "/mnt/src", "type": "bind", "source": str(src),
         "options": ["rbind", prop]},
        {"destination": "/mnt/out", "type": "bind", "source": str(out), "options": ["rbind"]},
    ]
    cfg["process"]["args"] = [
        "sh", "-c", "grep ' /mnt/src ' /proc/self/mountinfo > /mnt/out/info; "
        "touch /mnt/out/ready; i=0; while [ ! -e /mnt/src/sub/marker ] && [ $i -lt 200 ]; "
        "do sleep 0.05; i=$((i+1)); done; ls /mnt/src/sub > /mnt/out/seen"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    oci("create", "--bundle", str(bundle), "b1", check=True)
    oci("start", "b1", check=True)
    wait_for(lambda: (out / "ready").exists(), what="the container's first step")
    host_mounts("-t", "tmpfs", "tmpfs", str(src / "sub"))
    (src / "sub" / "marker").write_text("x")
    wait_for(lambda: (out / "seen").exists(), what="the container's answer")
    assert "master:" in (out / "info").read_text()
    assert (out / "seen").read_text().split() == ["marker"]


# ── options ────────────────────────────────────────────────────────────────────────────────
# options -> what mountinfo's per-mount options must hold (and must not)
OPTION_CASES = [
    (["rbind", "ro", "nosuid", "nodev", "noexec", "relatime"],
     {"ro", "nosuid", "nodev", "noexec", "relatime"}, set()),
    (["bind", "ro", "nosuid", "nodev", "noexec", "noatime"],
     {"ro", "nosuid", "nodev", "noexec", "noatime"}, {"relatime"}),
    (["bind", "ro", "nosuid", "nodev", "noexec", "strictatime"],
     {"ro", "nosuid", "nodev", "noexec"}, {"relatime", "noatime"}),
    (["rbind", "rw", "noatime", "nodiratime"], {"rw", "noatime", "nodiratime"}, set()),
    (["bind", "noatime", "strictatime"], set(), {"noatime", "relatime"}),
    (["bind", "strictatime", "relatime"], set(), {"noatime", "relatime"}),
    (["bind", "noatime", "atime"], {"relatime"}, {"noatime"}),
    (["bind", "nosymfollow", "noexec"], {"nosymfollow", "noexec"}, set()),
    (["rbind", "rro", "rnosuid", "rnoexec"], {"ro", "nosuid", "noexec"}, set()),
    (["rbind", "ratime"], {"relatime"}, {"noatime"}),
]
TMPFS_CASES = [
    (["ro", "nosuid", "nodev", "noexec", "noatime"], {"ro", "nosuid", "nodev", "noexec",
                                                      "noatime"}, set()),
    (["nosuid", "strictatime", "mode=755"], {"nosuid"}, {"relatime", "noatime"}),
    (["rro", "rnodev", "nodiratime"], {"ro", "nodev", "nodiratime"}, set()),
]


def test_every_option_combination(oci, bundle, tmp_path):
    """Binds and tmpfs mounts with ro/nosuid/nodev/noexec and each atime mode (mount_setattr
    wants an atime mode with MOUNT_ATTR__ATIME cleared), plus recursive attributes."""
    src = tmp_path / "src"
    src.mkdir()
    cfg = json.loads((bundle / "config.json").read_text())
    cases = []
    for i, (opts, want, never) in enumerate(OPTION_CASES):
        cfg["mounts"].append({"destination": f"/mnt/b{i}", "type": "bind",
                              "source": str(src), "options": opts})
        cases.append((f"/mnt/b{i}", opts, want, never))
    for i, (opts, want, never) in enumerate(TMPFS_CASES):
        cfg["mounts"].append({"destination": f"/mnt/t{i}", "type": "tmpfs",
                              "source": "tmpfs", "options": opts})
        cases.append((f"/mnt/t{i}", opts, want, never))
    (bundle / "config.json").write_text(json.dumps(cfg))
    mounts = mountinfo(run_in(oci, bundle, "cat /proc/self/mountinfo"))
    for point, opts, want, never in cases:
        got = mounts[point]["options"]
        assert want <= got and not never & got, (opts, got)


def test_recursive_attributes_reach_submounts(oci, bundle, tmp_path, host_mounts):
    """rro, rnosuid, rnodev, rnoexec on an rbind apply to every mount of its tree
    (mount_setattr with AT_RECURSIVE)."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "rosub").mkdir()
    host_mounts("-t", "tmpfs", "tmpfs", str(tree / "sub"))
    host_mounts("-t", "tmpfs", "-o", "ro", "tmpfs", str(tree / "rosub"))
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["mounts"] += [
        {"destination": "/r", "type": "bind", "source": str(tree),
         "options": ["rbind", "rro", "rnosuid", "rnodev", "rnoexec"]},
        {"destination": "/plain", "type": "bind", "source": str(tree), "options": ["rbind"]},
    ]
    (bundle / "config.json").write_text(json.dumps(cfg))
    mounts = mountinfo(run_in(oci, bundle, "cat /proc/self/mountinfo"))
    for point in ("/r", "/r/sub", "/r/rosub"):
        assert {"ro", "nosuid", "nodev", "noexec"} <= mounts[point]["options"], point
    assert "ro" not in mounts["/plain/sub"]["options"]


def test_features_list_the_recursive_attributes_and_idmap(oci):
    feats = json.loads(oci("features", check=True).stdout)
    assert feats["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    words = set(feats["mountOptions"])
    assert {"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
            "rnoatime", "ratime", "rrelatime", "rstrictatime", "rnodiratime",
            "rnosymfollow"} <= words
    assert {"idmap", "ridmap"} <= words


# ── idmapped mounts ───────────────────────────────────────────────────────────────────────
def test_idmapped_binds(oci, bundle, tmp_path, host_mounts):
    """A bind's uidMappings/gidMappings map its files' owners (Kubernetes' hostUsers: false
    needs this): "idmap" (the default) maps the top mount, "ridmap" every mount of the tree."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "f").write_text("x")
    host_mounts("-t", "tmpfs", "tmpfs", str(tree / "sub"))
    (tree / "sub" / "g").write_text("y")
    maps = [{"containerID": 0, "hostID": 1234, "size": 1}]
    cfg = json.loads((bundle / "config.json").read_text())
    for dst, opts in (("/top", ["rbind"]), ("/tree", ["rbind", "ridmap"])):
        cfg["mounts"].append({"destination": dst, "type": "bind", "source": str(tree),
                              "options": opts, "uidMappings": maps, "gidMappings": maps})
    (bundle / "config.json").write_text(json.dumps(cfg))
    out = run_in(oci, bundle, "stat -c '%n %u %g' /top/f /top/sub/g /tree/f /tree/sub/g")
    assert out.split("\n")[:4] == ["/top/f 1234 1234", "/top/sub/g 0 0",
                                   "/tree/f 1234 1234", "/tree/sub/g 1234 1234"]


def test_idmapped_bind_the_filesystem_refuses(oci, bundle):
    """A filesystem without idmapped mounts (procfs): one clear line, nothing left."""
    maps = [{"containerID": 0, "hostID": 1234, "size": 1}]
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["mounts"].append({"destination": "/hostproc", "type": "bind", "source": "/proc",
                          "options": ["rbind"], "uidMappings": maps, "gidMappings": maps})
    cfg["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    r = oci("run", "--bundle", str(bundle), "i2")
    assert r.returncode != 0
    assert "idmapped bind of /proc on /hostproc" in r.stderr and "takes no idmapping" \
        in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
