"""``jailer spec`` content round-trips through load_bundle; ``jailer features`` content."""

from __future__ import annotations

import json
import os

import pytest

from cgroups import DeviceRule, Limits
from jailer.core.spec import MASKED_PATHS, READONLY_PATHS
from jailer.frontends import ociconfig as oc
from jailer.policy import caps, seccomp


def write_bundle(tmp_path, cfg: dict) -> str:
    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(cfg, indent=2))
    return str(bundle)


def test_default_config_round_trips(tmp_path):
    cfg = oc.default_config()
    warnings: list[str] = []
    spec, raw = oc.load_bundle(write_bundle(tmp_path, cfg), "spec-1", warn=warnings.append)
    assert raw == cfg
    assert not [w for w in warnings if "capabilities" not in w]  # host-dependent only
    assert spec.args == ["sh"] and spec.tty is True and spec.readonly is True
    assert spec.rootfs == str(tmp_path / "b" / "rootfs")
    assert spec.namespaces == ["pid", "net", "ipc", "uts", "mount", "cgroup"]
    assert spec.userns is False and spec.uid_mappings == []
    assert spec.hostname == "jailer" and spec.no_new_privs is True
    assert [m.dst for m in spec.mounts] == ["/dev", "/dev/shm"]
    assert [m.dst for m in spec.ns_mounts] == ["/proc", "/dev/pts", "/dev/mqueue", "/sys",
                                               "/sys/fs/cgroup"]
    assert spec.masked_paths == list(MASKED_PATHS)
    assert spec.readonly_paths == list(READONLY_PATHS)
    assert spec.cap_sets["bounding"] == caps.JAIL_CAPS & caps.bounding_set()
    assert spec.cap_sets["ambient"] == frozenset() == spec.cap_sets["inheritable"]
    assert spec.seccomp is None and spec.limits == Limits(devices=[DeviceRule(False, "a")])
    assert cfg["ociVersion"] == oc.OCI_VERSION_MAX


def test_default_config_shape_is_runc_specs():
    cfg = oc.default_config()
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert cfg["process"]["env"][1] == "TERM=xterm" and cfg["process"]["cwd"] == "/"
    assert cfg["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024,
                                          "soft": 1024}]
    assert cfg["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    devpts = next(m for m in cfg["mounts"] if m["type"] == "devpts")
    assert "gid=5" in devpts["options"]
    assert "CAP_MKNOD" not in cfg["process"]["capabilities"]["bounding"]
    assert "CAP_CHOWN" in cfg["process"]["capabilities"]["bounding"]


def test_default_config_args():
    assert oc.default_config(args=["/bin/echo", "hi"])["process"]["args"] == \
        ["/bin/echo", "hi"]
    assert oc.default_config(args=[])["process"]["args"] == ["sh"]


def test_rootless_default_config_round_trips(tmp_path):
    cfg = oc.default_config(rootless=True)
    spec, _ = oc.load_bundle(write_bundle(tmp_path, cfg), "spec-2", warn=lambda m: None)
    assert spec.userns is True and "net" not in spec.namespaces
    assert spec.uid_mappings == [(0, os.geteuid(), 1)]
    assert spec.gid_mappings == [(0, os.getegid(), 1)]
    assert "resources" not in cfg["linux"]
    sys_mount = next(m for m in spec.mounts if m.dst == "/sys")
    assert (sys_mount.kind, sys_mount.src, sys_mount.recursive, sys_mount.readonly) == \
        ("bind", "/sys", True, True)
    devpts = next(m for m in spec.ns_mounts if m.kind == "devpts")
    assert "gid=5" not in devpts.options


def test_default_config_is_plain_json():
    for rootless in (False, True):
        cfg = oc.default_config(rootless=rootless)
        assert json.loads(json.dumps(cfg)) == cfg


# ── features ─────────────────────────────────────────────────────────────────────────────────
def test_features_is_json_with_the_schema_keys():
    feats = json.loads(json.dumps(oc.features()))
    assert set(feats) == {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux",
                          "annotations"}
    assert feats["ociVersionMin"] == "1.0.0"
    assert tuple(map(int, feats["ociVersionMax"].split("."))) >= (1, 0, 0)
    assert feats["hooks"] == ["prestart", "createRuntime", "createContainer",
                              "startContainer", "poststart", "poststop"]
    linux = feats["linux"]
    assert set(linux) == {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor",
                          "selinux", "intelRdt", "mountExtensions"}
    assert linux["namespaces"] == ["cgroup", "ipc", "mount", "network", "pid", "time", "user",
                                   "uts"]
    assert len(linux["capabilities"]) == len(caps.CAPS)
    assert all(c.startswith("CAP_") for c in linux["capabilities"])
    gaps = linux["cgroup"].pop("org.jailer.unsupported")  # this host's: see tests/oci
    assert all(isinstance(v, str) for v in gaps.values())
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": True,
                               "systemdUser": False, "rdma": True}
    for off in ("apparmor", "selinux", "intelRdt"):
        assert linux[off] == {"enabled": False}
    assert linux["mountExtensions"] == {"idmap": {"enabled": True}}
    assert all(isinstance(v, str) for v in feats["annotations"].values())


def test_features_seccomp_matches_what_from_oci_accepts():
    sc = oc.features()["linux"]["seccomp"]
    assert sc["enabled"] is True
    assert set(sc) == {"enabled", "actions", "operators", "archs", "knownFlags",
                       "supportedFlags"}
    assert "SCMP_ACT_NOTIFY" not in sc["actions"] and "SCMP_ACT_TRACE" not in sc["actions"]
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    for action in sc["actions"]:
        seccomp.from_oci({"defaultAction": action}, "t")
    for op in sc["operators"]:
        seccomp.from_oci({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": op}]}]}, "t")
    seccomp.from_oci({"defaultAction": "SCMP_ACT_ALLOW", "architectures": sc["archs"],
                      "flags": sc["supportedFlags"]}, "t")


def test_features_claims_what_to_spec_accepts(tmp_path):
    """Every namespace, hook and capability named in features() converts."""
    feats = oc.features()
    cfg = oc.default_config()
    cfg["linux"]["namespaces"] = [{"type": t} for t in feats["linux"]["namespaces"]]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    cfg["process"]["capabilities"] = {"bounding": feats["linux"]["capabilities"]}
    cfg["hooks"] = {h: [{"path": "/bin/true"}] for h in feats["hooks"]}
    cfg["mounts"].append({"destination": "/m", "type": "tmpfs", "source": "tmpfs",
                          "options": [w for w in feats["mountOptions"]
                                      if w not in ("bind", "rbind", "idmap", "ridmap")]})
    cfg["ociVersion"] = feats["ociVersionMin"]
    spec = oc.to_spec(cfg, write_bundle(tmp_path, cfg), "f", available=frozenset(caps.CAPS))
    assert set(spec.hooks) == set(feats["hooks"])
    assert spec.mounts[-1].kind == "tmpfs" and spec.mounts[-1].options == ""
    assert len(spec.caps) == len(caps.CAPS)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0+dev", "1.2.0", "1.3.0",
                                     "1.0.0-rc5"])
def test_every_1x_version_is_accepted(tmp_path, version):
    cfg = oc.default_config()
    cfg["ociVersion"] = version
    oc.to_spec(cfg, write_bundle(tmp_path, cfg), "v", available=frozenset(caps.CAPS))
