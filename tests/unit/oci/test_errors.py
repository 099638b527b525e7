"""Every way a bundle can be wrong gives one line that names the field (exit status 1)."""

from __future__ import annotations

import json

import pytest

from jailer.core.errors import JailerError
from jailer.frontends import ociconfig as oc

from . import ALL_CAPS, make_bundle, runc_spec


def error_of(cfg: dict, tmp_path, cid: str = "c1") -> str:
    bundle = make_bundle(tmp_path, cfg)
    with pytest.raises(oc.ConfigError) as info:
        oc.to_spec(cfg, bundle, cid, available=ALL_CAPS, warn=pytest.fail)
    err = info.value
    assert isinstance(err, JailerError) and err.exit_code == 1
    text = str(err)
    assert "\n" not in text and text.startswith("config.json: ")
    return text


def _set(path: str, value):
    """A change to the runc spec config: set (or, with value ..., delete) a dotted path."""
    def apply(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is ...:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


def _both(*changes):
    def apply(cfg: dict) -> None:
        for change in changes:
            change(cfg)
    return apply


def _add(path: str, item):
    def apply(cfg: dict) -> None:
        node = cfg
        for key in path.split("."):
            node = node.setdefault(key, [] if key == path.split(".")[-1] else {})
        node.append(item)
    return apply


TMPFS = {"destination": "/x", "type": "tmpfs", "source": "tmpfs"}

CASES = [
    # (id, change, words the message must contain)
    ("version missing", _set("ociVersion", ...), ["ociVersion", "missing"]),
    ("version major", _set("ociVersion", "2.0.0"), ["ociVersion", "2.0.0", "not supported"]),
    ("version zero", _set("ociVersion", "0.5.0"), ["ociVersion", "not supported"]),
    ("version garbage", _set("ociVersion", "latest"), ["ociVersion", "not a version"]),
    ("version type", _set("ociVersion", 1), ["ociVersion must be a string, got a number"]),
    ("root missing", _set("root", ...), ["root is missing"]),
    ("root type", _set("root", "rootfs"), ["root must be an object, got a string"]),
    ("root.path missing", _set("root.path", ...), ["root.path is missing"]),
    ("root.path absent dir", _set("root.path", "nope"), ["root.path", "nope",
                                                         "no such directory"]),
    ("root.path file", _set("root.path", "config.json"), ["root.path", "not a directory"]),
    ("readonly type", _set("root.readonly", "yes"), ["root.readonly must be true or false"]),
    ("process missing", _set("process", ...), ["process is missing"]),
    ("process type", _set("process", "sh"), ["process must be an object, got a string"]),
    ("args empty", _set("process.args", []), ["process.args must not be empty"]),
    ("args missing", _set("process.args", ...), ["process.args must not be empty"]),
    ("args string", _set("process.args", "sh"),
     ["process.args must be an array of strings, got a string"]),
    ("args element", _set("process.args", ["sh", 1]),
     ["process.args[1] must be a string, got a number"]),
    ("env not k=v", _set("process.env", ["NOEQUALS"]), ["process.env[0]", "KEY=VALUE"]),
    ("cwd relative", _set("process.cwd", "tmp"), ["process.cwd must be an absolute path"]),
    ("uid string", _set("process.user.uid", "0"),
     ["process.user.uid must be an integer from 0 to 4294967295, got a string"]),
    ("uid negative", _set("process.user.uid", -1),
     ["process.user.uid must be an integer from 0 to 4294967295, got -1"]),
    ("uid too big", _set("process.user.uid", 1 << 32),
     ["process.user.uid must be an integer from 0 to 4294967295, got 4294967296"]),
    ("rlimit too big", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1 << 64,
                                                  "hard": 1}]),
     ["process.rlimits[0].soft must be at most 18446744073709551615"]),
    ("uid fraction", _set("process.user.uid", 1.5),
     ["process.user.uid must be a whole number, got 1.5"]),
    ("gid bool", _set("process.user.gid", True), ["process.user.gid", "got a boolean"]),
    ("additional gids", _set("process.user.additionalGids", [1, "x"]),
     ["process.user.additionalGids[1]"]),
    ("additional gid null", _set("process.user.additionalGids", [1, None]),
     ["process.user.additionalGids[1] must be an integer, got null"]),
    ("umask range", _set("process.user.umask", 4096), ["process.user.umask"]),
    ("terminal type", _set("process.terminal", 1), ["process.terminal must be true or false"]),
    ("console size", _set("process.consoleSize", {"height": "x"}),
     ["process.consoleSize.height"]),
    ("oom score", _set("process.oomScoreAdj", 2000), ["process.oomScoreAdj", "-1000 to 1000"]),
    ("cap unknown", _add("process.capabilities.bounding", "CAP_FOO"),
     ["process.capabilities.bounding[3]", "'CAP_FOO' is not a capability"]),
    ("cap ALL", _set("process.capabilities.effective", ["ALL"]),
     ["process.capabilities.effective[0]", "not a capability"]),
    ("cap set type", _set("process.capabilities.ambient", "CAP_KILL"),
     ["process.capabilities.ambient must be an array of strings"]),
    ("rlimit unknown", _add("process.rlimits", {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}),
     ["process.rlimits[1].type", "'RLIMIT_FOO' is not a resource limit"]),
    ("rlimit no prefix", _set("process.rlimits", [{"type": "nofile", "soft": 1, "hard": 1}]),
     ["process.rlimits[0].type", "not a resource limit"]),
    ("rlimit dup", _add("process.rlimits", {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
     ["process.rlimits[1].type", "RLIMIT_NOFILE is listed twice"]),
    ("rlimit soft>hard", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 100,
                                                    "hard": 10}]),
     ["process.rlimits[0].soft", "above the hard limit"]),
    ("rlimit no hard", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 100}]),
     ["process.rlimits[0].hard is missing"]),
    ("hostname type", _set("hostname", 5), ["hostname must be a string, got a number"]),
    ("hostname without uts", _set("linux.namespaces", [{"type": "mount"}]),
     ["hostname needs a UTS namespace"]),
    ("mounts type", _set("mounts", "x"), ["mounts must be an array of objects, got a string"]),
    ("mount element", _set("mounts", ["proc"]), ["mounts[0] must be an object"]),
    ("mount no destination", _add("mounts", {"type": "tmpfs"}),
     ["mounts[7].destination is missing"]),
    ("mount options type", _add("mounts", {**TMPFS, "options": "ro"}),
     ["mounts[7].options must be an array of strings"]),
    ("mount option remount", _add("mounts", {**TMPFS, "options": ["remount"]}),
     ["mounts[7].options[0]", "'remount'", "not supported"]),
    ("mount option idmap", _add("mounts", {**TMPFS, "options": ["idmap"]}),
     ["mounts[7] asks for an idmapped mount", "only a bind"]),
    ("idmap without userns", _add("mounts", {"destination": "/x", "source": "/",
                                             "options": ["rbind", "ridmap"]}),
     ["mounts[7].options", "'ridmap'", "needs a user namespace"]),
    ("bind without source", _add("mounts", {"destination": "/x", "options": ["rbind"]}),
     ["mounts[7].source is missing"]),
    ("mount without type", _add("mounts", {"destination": "/x", "source": "x"}),
     ["mounts[7].type is missing"]),
    ("mount idmap", _add("mounts", {**TMPFS, "uidMappings": [{"containerID": 0,
                                                              "hostID": 1, "size": 1}]}),
     ["mounts[7] asks for an idmapped mount"]),
    ("idmap half", _add("mounts", {"destination": "/x", "source": "/", "options": ["bind"],
                                   "uidMappings": [{"containerID": 0, "hostID": 1,
                                                    "size": 1}]}),
     ["mounts[7].gidMappings is missing", "both"]),
    ("idmap bad mapping", _add("mounts", {"destination": "/x", "source": "/", "type": "bind",
                                          "uidMappings": [{"containerID": 0, "size": 1}],
                                          "gidMappings": []}),
     ["mounts[7].uidMappings[0].hostID"]),
    ("netDevices", _set("linux.netDevices", {"eth1": {}}), ["linux.netDevices",
                                                            "not supported"]),
    ("linux type", _set("linux", []), ["linux must be an object, got an array"]),
    ("ns unknown", _add("linux.namespaces", {"type": "foo"}),
     ["linux.namespaces[5].type", "'foo' is not a namespace type"]),
    ("ns missing type", _add("linux.namespaces", {"path": "/x"}),
     ["linux.namespaces[5].type is missing"]),
    ("ns duplicated", _add("linux.namespaces", {"type": "pid"}),
     ["linux.namespaces[5].type", "'pid' is listed twice"]),
    ("ns duplicated by path", _add("linux.namespaces", {"type": "uts", "path": "/p"}),
     ["linux.namespaces[5].type", "listed twice"]),
    ("ns bad type", _add("linux.namespaces", {"type": "clock"}),
     ["linux.namespaces[5].type", "'clock' is not a namespace type"]),
    ("ns relative path", _set("linux.namespaces.0", {"type": "pid", "path": "proc/1/ns"}),
     ["linux.namespaces[0].path must be an absolute path"]),
    ("user ns, no mount ns", _set("linux.namespaces", [{"type": "pid"}, {"type": "user"}]),
     ["linux.namespaces has a user namespace but no mount namespace"]),
    ("mount ns by path, user ns", _set("linux.namespaces", [
        {"type": "mount", "path": "/p/mnt"}, {"type": "user", "path": "/p/user"}]),
     ["linux.namespaces joins a mount namespace by path together with a user namespace"]),
    ("user ns without mappings", _add("linux.namespaces", {"type": "user"}),
     ["linux.uidMappings is missing", "user namespace"]),
    ("user ns without gid mappings", lambda c: (
        c["linux"]["namespaces"].append({"type": "user"}),
        c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
     ["linux.gidMappings is missing"]),
    ("hostname too long", _set("hostname", "h" * 65), ["hostname must be at most 64"]),
    ("uid not mapped", lambda c: (
        c["linux"]["namespaces"].append({"type": "user"}),
        c["process"]["user"].update(uid=1000),
        c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1000}],
                          gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
     ["process.user.uid 1000 is not mapped by linux.uidMappings"]),
    ("mappings without user ns",
     _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     ["linux.uidMappings given but linux.namespaces has no user namespace"]),
    ("mapping size 0", lambda c: (
        c["linux"]["namespaces"].append({"type": "user"}),
        c["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 0}],
                          gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
     ["linux.uidMappings[0].size must be an integer from 1"]),
    ("mapping field missing", lambda c: (
        c["linux"]["namespaces"].append({"type": "user"}),
        c["linux"].update(uidMappings=[{"containerID": 0, "size": 1}],
                          gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
     ["linux.uidMappings[0].hostID is missing"]),
    ("time offsets", _set("linux.timeOffsets", {"monotonic": {"secs": 1}}),
     ["linux.timeOffsets", "time namespace"]),
    ("device type", _set("linux.devices", [{"path": "/dev/x", "type": "x", "major": 1,
                                            "minor": 1}]),
     ["linux.devices[0].type", "'x' is not a device type"]),
    ("device relative", _set("linux.devices", [{"path": "dev/x", "type": "c", "major": 1,
                                                "minor": 1}]),
     ["linux.devices[0].path must be an absolute path"]),
    ("device no major", _set("linux.devices", [{"path": "/dev/x", "type": "c"}]),
     ["linux.devices[0].major is missing"]),
    ("cgroupsPath type", _set("linux.cgroupsPath", 1), ["linux.cgroupsPath must be a string"]),
    ("sysctl value", _set("linux.sysctl", {"net.ipv4.ip_forward": 1}),
     ["linux.sysctl['net.ipv4.ip_forward'] must be a string, got a number"]),
    ("sysctl host", _set("linux.sysctl", {"vm.swappiness": "1"}),
     ["linux.sysctl['vm.swappiness']", "not in a namespace"]),
    ("sysctl net without netns", lambda c: (
        c["linux"].update(namespaces=[{"type": "mount"}, {"type": "uts"}],
                          sysctl={"net.ipv4.ip_forward": "1"})),
     ["linux.sysctl['net.ipv4.ip_forward']", "needs a network namespace"]),
    ("sysctl ipc without ipcns", lambda c: (
        c["linux"].update(namespaces=[{"type": "mount"}, {"type": "uts"}],
                          sysctl={"kernel.shmmax": "1"})),
     ["linux.sysctl['kernel.shmmax']", "needs an IPC namespace"]),
    ("sysctl hostname", _set("linux.sysctl", {"kernel.hostname": "x"}),
     ["linux.sysctl['kernel.hostname']", "hostname field"]),
    ("masked relative", _set("linux.maskedPaths", ["proc/kcore"]),
     ["linux.maskedPaths[0] must be an absolute path"]),
    ("readonly paths type", _set("linux.readonlyPaths", "/proc"),
     ["linux.readonlyPaths must be an array of strings"]),
    ("propagation", _set("linux.rootfsPropagation", "bogus"),
     ["linux.rootfsPropagation", "'bogus' is not one of"]),
    ("seccomp", _set("linux.seccomp", {"syscalls": []}),
     ["config.json: linux.seccomp.defaultAction: missing"]),
    ("seccomp action", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                              "syscalls": [{"names": ["read"]}]}),
     ["config.json: linux.seccomp.syscalls[0].action: missing"]),
    ("seccomp type", _set("linux.seccomp", []), ["linux.seccomp must be an object"]),
    ("intelRdt", _set("linux.intelRdt", {"closID": "x"}), ["linux.intelRdt", "not supported"]),
    ("personality", _set("linux.personality", {"domain": "LINUX64"}),
     ["linux.personality.domain", "'LINUX64' is not one of LINUX, LINUX32"]),
    ("personality flags", _set("linux.personality", {"domain": "LINUX", "flags": ["x"]}),
     ["linux.personality.flags are not supported"]),
    ("time offsets joined", _both(_add("linux.namespaces", {"type": "time", "path": "/t"}),
                                  _set("linux.timeOffsets", {"boottime": {"secs": 1}})),
     ["linux.timeOffsets cannot change the offsets of a time namespace joined by path"]),
    ("time offsets clock", _both(_add("linux.namespaces", {"type": "time"}),
                                 _set("linux.timeOffsets", {"realtime": {"secs": 1}})),
     ["linux.timeOffsets.realtime is not a clock of a time namespace"]),
    ("scheduler policy", _set("process.scheduler", {"policy": "SCHED_FAST"}),
     ["process.scheduler.policy", "'SCHED_FAST' is not one of SCHED_OTHER"]),
    ("scheduler nice", _set("process.scheduler", {"policy": "SCHED_OTHER", "nice": 20}),
     ["process.scheduler.nice must be an integer from -20 to 19, got 20"]),
    ("scheduler flag", _set("process.scheduler", {"policy": "SCHED_RR", "flags": ["X"]}),
     ["process.scheduler.flags[0]", "'X' is not one of"]),
    ("ioprio class", _set("process.ioPriority", {"class": "IOPRIO_CLASS_NONE"}),
     ["process.ioPriority.class", "'IOPRIO_CLASS_NONE' is not one of"]),
    ("ioprio level", _set("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}),
     ["process.ioPriority.priority must be an integer from 0 to 7, got 8"]),
    ("hooks type", _set("hooks", []), ["hooks must be an object, got an array"]),
    ("hook relative", _set("hooks", {"prestart": [{"path": "bin/x"}]}),
     ["hooks.prestart[0].path must be an absolute path"]),
    ("hook no path", _set("hooks", {"poststop": [{"args": []}]}),
     ["hooks.poststop[0].path is missing"]),
    ("hook timeout 0", _set("hooks", {"createRuntime": [{"path": "/x", "timeout": 0}]}),
     ["hooks.createRuntime[0].timeout must be an integer from 1 to 2147483, got 0"]),
    ("hook args", _set("hooks", {"poststart": [{"path": "/x", "args": "x"}]}),
     ["hooks.poststart[0].args must be an array of strings"]),
    ("annotation value", _set("annotations", {"a": 1}), ["annotations['a'] must be a string"]),
    ("memory string", _set("linux.resources.memory", {"limit": "5"}),
     ["linux.resources.memory.limit must be an integer", "got a string"]),
]


@pytest.mark.parametrize("change,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_error(tmp_path, change, words):
    cfg = runc_spec()
    change(cfg)
    text = error_of(cfg, tmp_path)
    for word in words:
        assert word in text, text


@pytest.mark.parametrize("cid", ["a/b", "..", ".", "", "a b", "a:b", "ä", "x\n", "a,b"])
def test_bad_container_id(tmp_path, cid):
    bundle = make_bundle(tmp_path)
    with pytest.raises(oc.ConfigError, match="^invalid container id") as info:
        oc.load_bundle(bundle, cid)
    assert info.value.exit_code == 1 and "\n" not in str(info.value)


@pytest.mark.parametrize("cid", ["abc", "a.b", "a+b", "A_b-9", "...", "4f1c" * 16])
def test_good_container_id(cid):
    assert oc.check_id(cid) == cid  # runc's validateID: ASCII letters, digits, _ + - .


def bundle_error(bundle: str) -> str:
    with pytest.raises(oc.ConfigError) as info:
        oc.load_bundle(bundle, "c1")
    assert info.value.exit_code == 1 and "\n" not in str(info.value)
    return str(info.value)


def test_bundle_missing(tmp_path):
    assert bundle_error(str(tmp_path / "nope")) == f"bundle {tmp_path}/nope: no such directory"


def test_bundle_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    assert bundle_error(str(tmp_path / "f")) == f"bundle {tmp_path}/f: not a directory"


def test_config_missing(tmp_path):
    assert bundle_error(str(tmp_path)) == \
        f"bundle {tmp_path}: no config.json in it (jailer spec writes one)"


@pytest.mark.parametrize("text,words", [
    ("{", ["invalid JSON at line 1 column 2"]),
    ('{"ociVersion": "1.0.0",}', ["invalid JSON at line 1 column 24"]),
    ("", ["invalid JSON at line 1 column 1"]),
    ('{"a": NaN}', ["invalid JSON", "NaN"]),
    ("[1, 2]", ["config.json: must be a JSON object, got an array"]),
    ("\xff", ["not UTF-8"]),
])
def test_malformed_json(tmp_path, text, words):
    (tmp_path / "config.json").write_text(text, encoding="latin-1")
    msg = bundle_error(str(tmp_path))
    assert msg.startswith("config.json: ")
    for w in words:
        assert w in msg


def test_not_utf8(tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"a": "\xff"}')
    assert "not UTF-8" in bundle_error(str(tmp_path))


def test_to_spec_refuses_a_non_object(tmp_path):
    with pytest.raises(oc.ConfigError, match="must be a JSON object, got an array"):
        oc.to_spec([], str(tmp_path), "c1")


def test_errors_from_load_bundle_match_to_spec(tmp_path):
    cfg = runc_spec()
    cfg["process"]["args"] = "sh"
    bundle = make_bundle(tmp_path, cfg)
    assert json.loads(open(f"{bundle}/config.json").read())["process"]["args"] == "sh"
    assert bundle_error(bundle) == \
        "config.json: process.args must be an array of strings, got a string"
