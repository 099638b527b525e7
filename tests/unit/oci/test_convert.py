"""Whole configs into a Spec: runc spec's output, a podman-shaped config, hooks, devices."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from cgroups import DeviceRule, Limits
from jailer.core.spec import Device, Hook, Mount, Rlimit
from jailer.frontends import ociconfig as oc
from jailer.policy import seccomp

from . import ALL_CAPS, DEFAULT_CAPS, make_bundle, podman_config, runc_spec

NSX = oc.MS_NOSUID | oc.MS_NODEV | oc.MS_NOEXEC


def convert(cfg: dict, tmp_path, cid: str = "c1", **kw):
    bundle = make_bundle(tmp_path, cfg)
    warnings: list[str] = []
    spec = oc.to_spec(cfg, bundle, cid, warn=warnings.append,
                      available=kw.pop("available", ALL_CAPS), **kw)
    return spec, warnings, bundle


def test_runc_spec_output_converts(tmp_path):
    spec, warnings, bundle = convert(runc_spec(), tmp_path, "ctr-1")
    assert warnings == []
    # the OCI presets
    assert (spec.oci, spec.id, spec.level, spec.pivot_root, spec.cow, spec.idmap,
            spec.cgroup) == (True, "ctr-1", "container", True, False, False, True)
    assert spec.rootfs == f"{bundle}/rootfs" and spec.readonly is True
    # process
    assert spec.args == ["sh"] and spec.cwd == "/" and spec.tty is True
    assert spec.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "TERM=xterm"]  # as given: no defaults added
    assert (spec.uid, spec.gid, spec.groups, spec.umask) == (0, 0, [], 0o022)  # runc default
    assert spec.no_new_privs is True and spec.oom_score_adj is None
    assert spec.rlimits == [Rlimit(name="nofile", soft=1024, hard=1024)]
    three = frozenset({"AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"})
    assert spec.cap_sets == {"bounding": three, "effective": three, "permitted": three,
                             "inheritable": frozenset(), "ambient": three}
    assert spec.caps == three and spec.ambient == three
    assert spec.hostname == "runc" and spec.domainname is None
    # namespaces
    assert spec.namespaces == ["pid", "net", "ipc", "uts", "mount"]
    assert spec.userns is False and spec.ns_paths == {} and spec.loopback is True
    assert spec.uid_mappings == [] and spec.gid_mappings == []
    # mounts: binds/tmpfs on the host side, namespace-bound kinds apart, order kept in each
    assert spec.mounts == [
        Mount(kind="tmpfs", src="tmpfs", dst="/dev", options="mode=755,size=65536k",
              flags=oc.MS_NOSUID | oc.MS_STRICTATIME, recursive=False),
        Mount(kind="tmpfs", src="shm", dst="/dev/shm", options="mode=1777,size=65536k",
              flags=NSX, recursive=False),
    ]
    assert [(m.kind, m.dst) for m in spec.ns_mounts] == [
        ("proc", "/proc"), ("devpts", "/dev/pts"), ("mqueue", "/dev/mqueue"),
        ("sysfs", "/sys"), ("cgroup", "/sys/fs/cgroup")]
    devpts = spec.ns_mounts[1]
    assert devpts.options == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert devpts.flags == oc.MS_NOSUID | oc.MS_NOEXEC and not devpts.readonly
    assert spec.ns_mounts[3].readonly and spec.ns_mounts[3].flags == NSX
    assert spec.ns_mounts[4].flags == NSX | oc.MS_RELATIME
    # the rest
    assert spec.devices == [] and spec.limits == Limits(devices=[DeviceRule(False, "a")])
    assert spec.seccomp is None and spec.sysctl == {} and spec.hooks == {}
    assert spec.masked_paths[:2] == ["/proc/acpi", "/proc/asound"]
    assert spec.readonly_paths == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                   "/proc/sysrq-trigger"]
    assert spec.rootfs_propagation is None and spec.console_size is None
    assert spec.annotations == {} and spec.cgroups_path is None


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
@pytest.mark.parametrize("rootless", [False, True])
def test_live_runc_spec_converts(tmp_path, rootless):
    """Whatever this host's runc writes is accepted unchanged."""
    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    subprocess.run(["runc", "spec", *(["--rootless"] if rootless else [])], cwd=bundle,
                   check=True)
    spec, cfg = oc.load_bundle(str(bundle), "live", warn=pytest.fail)
    assert spec.args == ["sh"] and spec.userns is rootless
    if rootless:
        assert "net" not in spec.namespaces
        sys_mount = next(m for m in spec.mounts if m.dst == "/sys")
        assert (sys_mount.kind, sys_mount.src, sys_mount.recursive) == ("bind", "/sys", True)
        assert spec.uid_mappings == [(m["containerID"], m["hostID"], m["size"])
                                     for m in cfg["linux"]["uidMappings"]]


def test_podman_config_converts(tmp_path):
    rootfs = tmp_path / "merged"
    rootfs.mkdir()
    userdata = "/run/containers/storage/overlay-containers/4f1c2d/userdata"
    cfg = podman_config(str(rootfs), userdata)
    spec, warnings, _ = convert(cfg, tmp_path, "4f1c2d")
    assert warnings == []
    assert spec.rootfs == str(rootfs) and spec.readonly is False  # absolute root.path
    assert spec.umask == 0o022 and spec.groups == [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27]
    assert spec.tty is False and spec.no_new_privs is False  # absent: OCI's default
    assert spec.oom_score_adj == 0
    assert spec.env[2:] == ["container=podman", "HOSTNAME=4f1c2d", "HOME=/root"]
    assert spec.rlimits == [Rlimit(name="nofile", soft=1048576, hard=1048576),
                            Rlimit(name="nproc", soft=4194304, hard=4194304)]
    want = frozenset(c.removeprefix("CAP_") for c in DEFAULT_CAPS)
    assert spec.caps == want and spec.cap_sets["effective"] == want
    assert spec.cap_sets["ambient"] == frozenset() == spec.ambient
    # a joined network namespace: no new one, no loopback set-up
    assert spec.namespaces == ["pid", "ipc", "uts", "mount", "cgroup"]
    assert spec.ns_paths == {"net": "/run/netns/netns-8a4d"} and spec.loopback is False
    binds = [m for m in spec.mounts if m.kind == "bind"]
    assert [m.dst for m in binds] == ["/etc/hostname", "/etc/resolv.conf", "/etc/hosts",
                                      "/dev/shm", "/run/.containerenv"]
    assert binds[0] == Mount(kind="bind", src=f"{userdata}/hostname", dst="/etc/hostname",
                             flags=oc.MS_NODEV,  # nodev unless the options say "dev"
                             propagation=oc.MS_PRIVATE | oc.MS_REC, recursive=False)
    assert binds[3].flags == NSX
    assert [m.kind for m in spec.ns_mounts] == ["proc", "sysfs", "devpts", "mqueue",
                                                "cgroup"]
    assert spec.ns_mounts[-1].propagation == oc.MS_PRIVATE | oc.MS_REC
    # resources, cgroup path, sysctl, annotations
    lim = spec.limits
    assert (lim.memory_max, lim.memory_swap, lim.pids_max) == (64 << 20, 128 << 20, 2048)
    assert (lim.cpu_quota, lim.cpu_period, lim.cpu_shares) == (50000, 100000, 1024)
    assert spec.cgroups_path == "/libpod_parent/libpod-4f1c2d"
    assert spec.sysctl == {"net.ipv4.ping_group_range": "0 0"}
    assert spec.annotations["io.container.manager"] == "libpod"
    # seccomp goes through jailer.policy.seccomp.from_oci
    pol = spec.seccomp
    assert isinstance(pol, seccomp.Policy)
    assert (pol.default_action, pol.default_errno) == ("errno", 38)
    assert seccomp.Rule("mount", "errno", 1) in pol.rules
    assert seccomp.Rule("personality", "allow", 0, (seccomp.Arg(0, "eq", 0),)) in pol.rules
    assert spec.masked_paths == ["/proc/acpi", "/proc/kcore", "/proc/keys", "/sys/firmware"]


def test_load_bundle_reads_relative_bundle(tmp_path, monkeypatch):
    bundle = make_bundle(tmp_path, runc_spec())
    monkeypatch.chdir(tmp_path)
    spec, raw = oc.load_bundle("bundle", "x", warn=lambda m: None)
    assert spec.rootfs == f"{bundle}/rootfs"
    assert raw["hostname"] == "runc" and raw == json.loads(open(f"{bundle}/config.json").read())


def test_rootfs_symlink_is_resolved(tmp_path):
    cfg = runc_spec()
    bundle = make_bundle(tmp_path, cfg, rootfs="real")
    (tmp_path / "bundle" / "rootfs").symlink_to("real")
    spec = oc.to_spec(cfg, bundle, "x", available=ALL_CAPS)
    assert spec.rootfs == f"{bundle}/real"


def test_process_fields(tmp_path):
    cfg = runc_spec()
    cfg["process"].update(
        cwd="/work", terminal=False, noNewPrivileges=False, oomScoreAdj=-500,
        user={"uid": 1000, "gid": 100, "umask": 0o077, "additionalGids": [10, 20]},
        consoleSize={"height": 40, "width": 120},
        rlimits=[{"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615},
                 {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}],
        capabilities={"bounding": ["CAP_CHOWN", "CAP_NET_ADMIN"],
                      "permitted": ["CAP_NET_ADMIN"], "inheritable": ["CAP_NET_ADMIN"],
                      "ambient": ["CAP_NET_ADMIN"]})
    cfg["domainname"] = "example.org"
    spec, _, _ = convert(cfg, tmp_path)
    assert (spec.cwd, spec.tty, spec.no_new_privs, spec.oom_score_adj) == \
        ("/work", False, False, -500)
    assert (spec.uid, spec.gid, spec.umask, spec.groups) == (1000, 100, 0o077, [10, 20])
    assert spec.console_size == (40, 120)
    assert spec.rlimits == [Rlimit(name="core", soft=0, hard=-1),  # 2^64-1: RLIM_INFINITY
                            Rlimit(name="nofile", soft=1024, hard=4096)]
    net = frozenset({"NET_ADMIN"})
    assert spec.cap_sets == {"bounding": frozenset({"CHOWN", "NET_ADMIN"}),
                             "effective": frozenset(), "permitted": net, "inheritable": net,
                             "ambient": net}
    assert spec.domainname == "example.org"


def test_no_capabilities_object_leaves_the_process_its_own(tmp_path):
    cfg = runc_spec()
    del cfg["process"]["capabilities"]
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.caps is None and spec.cap_sets is None and spec.ambient == frozenset()


def test_unavailable_capabilities_are_dropped_with_a_warning(tmp_path):
    cfg = runc_spec()
    cfg["process"]["capabilities"]["bounding"].append("CAP_BPF")
    spec, warnings, _ = convert(cfg, tmp_path, available=ALL_CAPS - {"BPF"})
    assert "BPF" not in spec.caps
    assert warnings == ["config.json: capabilities this runtime does not have, ignored: "
                        "CAP_BPF"]


def test_capability_names_any_case(tmp_path):
    cfg = runc_spec()
    cfg["process"]["capabilities"] = {"bounding": ["cap_chown", "CAP_KILL"]}
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.caps == frozenset({"CHOWN", "KILL"})


def test_user_namespace_and_paths(tmp_path):
    cfg = runc_spec()
    cfg["linux"]["namespaces"] = [
        {"type": "user"}, {"type": "mount"}, {"type": "uts"},
        {"type": "pid", "path": "/proc/42/ns/pid"}, {"type": "ipc", "path": "/proc/42/ns/ipc"},
        {"type": "cgroup"}]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 1},
                                   {"containerID": 1, "hostID": 200000, "size": 10}]
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.userns is True and "user" not in spec.namespaces
    assert spec.namespaces == ["mount", "uts", "cgroup"]
    assert spec.ns_paths == {"pid": "/proc/42/ns/pid", "ipc": "/proc/42/ns/ipc"}
    assert spec.uid_mappings == [(0, 100000, 65536)]
    assert spec.gid_mappings == [(0, 100000, 1), (1, 200000, 10)]
    assert spec.loopback is False


def test_joined_user_namespace_needs_no_mappings(tmp_path):
    cfg = runc_spec()
    cfg["linux"]["namespaces"].append({"type": "user", "path": "/proc/42/ns/user"})
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.ns_paths == {"user": "/proc/42/ns/user"} and spec.userns is False


def test_devices(tmp_path):
    cfg = runc_spec()
    cfg["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o20666,
         "uid": 0, "gid": 0},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
        {"path": "/dev/ttyX", "type": "u", "major": 4, "minor": 64, "fileMode": 0o620,
         "gid": 5},
        {"path": "/dev/pipe", "type": "p"},
    ]
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.devices == [
        Device(path="/dev/fuse", kind="c", major=10, minor=229, mode=0o666, uid=0, gid=0),
        Device(path="/dev/sda", kind="b", major=8, minor=0, mode=0o666),
        Device(path="/dev/ttyX", kind="c", major=4, minor=64, mode=0o620, gid=5),
        Device(path="/dev/pipe", kind="p"),
    ]


def test_hooks(tmp_path):
    cfg = runc_spec()
    cfg["hooks"] = {
        "prestart": [{"path": "/usr/bin/net-setup", "args": ["net-setup", "up"],
                      "env": ["A=1"], "timeout": 5}],
        "createRuntime": [{"path": "/bin/a"}, {"path": "/bin/b", "timeout": 1}],
        "poststop": [{"path": "/bin/cleanup"}],
        "startContainer": [],
        "someFuturePhase": [{"path": "relative/is/fine/here"}],
    }
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.hooks == {
        "prestart": [Hook(path="/usr/bin/net-setup", args=["net-setup", "up"], env=["A=1"],
                          timeout=5)],
        "createRuntime": [Hook(path="/bin/a"), Hook(path="/bin/b", timeout=1)],
        "poststop": [Hook(path="/bin/cleanup")],
    }


def test_linux_misc(tmp_path):
    cfg = runc_spec()
    cfg["linux"].update(
        sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "5",
                "kernel.domainname": "x", "net/ipv4/conf/eth0.1/rp_filter": "0"},
        rootfsPropagation="rslave", cgroupsPath="system.slice:jailer:c1",
        maskedPaths=[], mountLabel="system_u:object_r:container_file_t:s0")
    del cfg["linux"]["readonlyPaths"]
    cfg["annotations"] = {"a": "b"}
    spec, _, _ = convert(cfg, tmp_path)
    assert spec.sysctl["net/ipv4/conf/eth0.1/rp_filter"] == "0"  # kept as given
    assert spec.rootfs_propagation == oc.MS_SLAVE | oc.MS_REC
    assert spec.cgroups_path == "system.slice:jailer:c1"
    assert spec.masked_paths == [] and spec.readonly_paths == []  # not jailer's defaults
    assert spec.annotations == {"a": "b"}


def test_unknown_keys_are_ignored(tmp_path):
    cfg = runc_spec()
    cfg["vm"] = {"hypervisor": {"path": "/x"}}
    cfg["process"]["scheduler"] = {"policy": "SCHED_OTHER"}
    cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    cfg["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND"}
    cfg["mounts"][0]["uidMappings"] = []
    cfg["linux"]["resources"]["somethingNew"] = {"x": 1}
    cfg["hostname"] = None  # null is absent, as for Go
    spec, warnings, _ = convert(cfg, tmp_path)
    assert warnings == [] and spec.hostname is None


def test_relative_mount_destination_warns_and_is_taken_from_root(tmp_path):
    cfg = runc_spec()
    cfg["mounts"].append({"destination": "data/../tmp", "type": "tmpfs", "source": "tmpfs"})
    cfg["mounts"].append({"destination": "/srv//x/", "type": "bind", "source": "data"})
    spec, warnings, bundle = convert(cfg, tmp_path)
    assert spec.mounts[-2].dst == "/tmp"
    assert warnings == ["config.json: mounts[7].destination 'data/../tmp' is not absolute: "
                        "taken as relative to /"]
    # a relative bind source is relative to the bundle, as in runc
    assert (spec.mounts[-1].dst, spec.mounts[-1].src) == ("/srv/x", f"{bundle}/data")


def test_tmpcopyup_is_dropped_with_a_warning(tmp_path):
    cfg = runc_spec()
    cfg["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                          "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]})
    spec, warnings, _ = convert(cfg, tmp_path)
    assert spec.mounts[-1].options == ""
    assert warnings == ["config.json: mounts[7] (/run): option(s) tmpcopyup not supported, "
                        "ignored"]
