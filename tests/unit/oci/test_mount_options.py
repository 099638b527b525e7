"""Mount option words: flags, their negations, propagation, bind/rbind, the data string."""

from __future__ import annotations

import pytest

from jailer.frontends import ociconfig as oc
from jailer.frontends.ociconfig import (
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)
from jailer.frontends.plans import bind_attrs
from jailer.kernel import syscalls as S

from . import ALL_CAPS, make_bundle, runc_spec

# words -> (readonly, flags, propagation, bind, data)
TABLE = [
    ([], (False, 0, 0, None, "")),
    (["defaults"], (False, 0, 0, None, "")),
    (["ro"], (True, 0, 0, None, "")),
    (["ro", "rw"], (False, 0, 0, None, "")),
    (["rw", "ro"], (True, 0, 0, None, "")),
    (["nosuid"], (False, MS_NOSUID, 0, None, "")),
    (["nodev"], (False, MS_NODEV, 0, None, "")),
    (["noexec"], (False, MS_NOEXEC, 0, None, "")),
    (["sync"], (False, MS_SYNCHRONOUS, 0, None, "")),
    (["dirsync"], (False, MS_DIRSYNC, 0, None, "")),
    (["noatime"], (False, MS_NOATIME, 0, None, "")),
    (["nodiratime"], (False, MS_NODIRATIME, 0, None, "")),
    (["relatime"], (False, MS_RELATIME, 0, None, "")),
    (["strictatime"], (False, MS_STRICTATIME, 0, None, "")),
    (["mand"], (False, MS_MANDLOCK, 0, None, "")),
    (["nosymfollow"], (False, MS_NOSYMFOLLOW, 0, None, "")),
    (["lazytime"], (False, MS_LAZYTIME, 0, None, "")),
    # negations clear what an earlier word set; later words win
    (["nosuid", "suid"], (False, 0, 0, None, "")),
    (["suid", "nosuid"], (False, MS_NOSUID, 0, None, "")),
    (["nodev", "dev"], (False, 0, 0, None, "")),
    (["noexec", "exec"], (False, 0, 0, None, "")),
    (["sync", "async"], (False, 0, 0, None, "")),
    (["noatime", "atime"], (False, 0, 0, None, "")),
    (["nodiratime", "diratime"], (False, 0, 0, None, "")),
    (["relatime", "norelatime"], (False, 0, 0, None, "")),
    (["strictatime", "nostrictatime"], (False, 0, 0, None, "")),
    (["mand", "nomand"], (False, 0, 0, None, "")),
    (["nosymfollow", "symfollow"], (False, 0, 0, None, "")),
    (["nosuid", "nodev", "noexec", "dev"], (False, MS_NOSUID | MS_NOEXEC, 0, None, "")),
    # propagation
    (["private"], (False, 0, MS_PRIVATE, None, "")),
    (["rprivate"], (False, 0, MS_PRIVATE | MS_REC, None, "")),
    (["shared"], (False, 0, MS_SHARED, None, "")),
    (["rshared"], (False, 0, MS_SHARED | MS_REC, None, "")),
    (["slave"], (False, 0, MS_SLAVE, None, "")),
    (["rslave"], (False, 0, MS_SLAVE | MS_REC, None, "")),
    (["unbindable"], (False, 0, MS_UNBINDABLE, None, "")),
    (["runbindable"], (False, 0, MS_UNBINDABLE | MS_REC, None, "")),
    (["rshared", "rslave"], (False, 0, MS_SLAVE | MS_REC, None, "")),
    # bind
    (["bind"], (False, 0, 0, "bind", "")),
    (["rbind"], (False, 0, 0, "rbind", "")),
    (["rbind", "rprivate", "ro", "nosuid"], (True, MS_NOSUID, MS_PRIVATE | MS_REC, "rbind",
                                             "")),
    # everything else is the filesystem's data, in order
    (["mode=755", "size=65536k"], (False, 0, 0, None, "mode=755,size=65536k")),
    (["nosuid", "strictatime", "mode=755", "size=65536k"],
     (False, MS_NOSUID | MS_STRICTATIME, 0, None, "mode=755,size=65536k")),
    (["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
     (False, MS_NOSUID | MS_NOEXEC, 0, None, "newinstance,ptmxmode=0666,mode=0620,gid=5")),
    (["lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "ro"],
     (True, 0, 0, None, "lowerdir=/a:/b,upperdir=/u,workdir=/w")),
    (["", "uid=1000"], (False, 0, 0, None, "uid=1000")),
]


@pytest.mark.parametrize("words,want", TABLE, ids=[",".join(w) or "none" for w, _ in TABLE])
def test_option_words(words, want):
    readonly, flags, prop, bind, data, dropped, clear = oc.parse_mount_options(words)
    assert (readonly, flags, prop, bind, data) == want
    assert dropped == [] and clear == 0


@pytest.mark.parametrize("word", ["tmpcopyup", "copy-symlink"])
def test_dropped_words(word):
    *_, data, dropped, _clear = oc.parse_mount_options(["mode=755", word])
    assert (data, dropped) == ("mode=755", [word])


@pytest.mark.parametrize("word", ["remount"])
def test_refused_words(word):
    with pytest.raises(oc.ConfigError, match=rf"^config.json: mounts\[2\].options\[1\] "
                                             rf"'{word}': .* not supported"):
        oc.parse_mount_options(["ro", word], "mounts[2].options")


def test_every_supported_word_is_in_features():
    words = set(oc.features()["mountOptions"])
    assert words == {*oc.FLAG_WORDS, *oc.PROPAGATION_WORDS, *oc.OTHER_WORDS,
                     *oc.RECURSIVE_WORDS, *oc.IDMAP_WORDS}
    assert not words & set(oc.REFUSED_WORDS) and not words & set(oc.DROPPED_WORDS)


# recursive words: their plain word's flags, and a negative one clears on the whole tree
RECURSIVE = [
    (["rro"], (True, 0, 0)),
    (["ro", "rrw"], (False, 0, MS_RDONLY)),
    (["rrw", "rro"], (True, 0, 0)),
    (["rnosuid", "rnodev", "rnoexec"], (False, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0)),
    (["nosuid", "rsuid"], (False, 0, MS_NOSUID)),
    (["rsuid", "nosuid"], (False, MS_NOSUID, MS_NOSUID)),
    (["rsuid", "rnosuid"], (False, MS_NOSUID, 0)),
    (["rnoatime"], (False, MS_NOATIME, 0)),
    (["ratime"], (False, 0, MS_NOATIME)),
    (["rstrictatime", "rnodiratime", "rnosymfollow"],
     (False, MS_STRICTATIME | MS_NODIRATIME | MS_NOSYMFOLLOW, 0)),
]


@pytest.mark.parametrize("words,want", RECURSIVE, ids=[",".join(w) for w, _ in RECURSIVE])
def test_recursive_words(words, want):
    readonly, flags, _prop, _bind, data, dropped, clear = oc.parse_mount_options(words)
    assert (readonly, flags, clear) == want and data == "" and dropped == []


@pytest.mark.parametrize("flags,clear,want", [
    (MS_NOSUID | MS_NOEXEC, 0, (S.MOUNT_ATTR_NOSUID | S.MOUNT_ATTR_NOEXEC, 0)),
    (MS_NOATIME, 0, (S.MOUNT_ATTR_NOATIME, S.MOUNT_ATTR__ATIME)),
    (MS_RELATIME, 0, (S.MOUNT_ATTR_RELATIME, S.MOUNT_ATTR__ATIME)),
    (MS_NOATIME | MS_STRICTATIME, 0, (S.MOUNT_ATTR_STRICTATIME, S.MOUNT_ATTR__ATIME)),
    (MS_NOATIME | MS_RELATIME, 0, (S.MOUNT_ATTR_NOATIME, S.MOUNT_ATTR__ATIME)),
    (MS_NODIRATIME, MS_NOATIME, (S.MOUNT_ATTR_NODIRATIME | S.MOUNT_ATTR_RELATIME,
                                 S.MOUNT_ATTR__ATIME)),
    (0, MS_RDONLY | MS_NODEV, (0, S.MOUNT_ATTR_RDONLY | S.MOUNT_ATTR_NODEV)),
])
def test_bind_attributes(flags, clear, want):
    """mount_setattr takes one atime mode, with MOUNT_ATTR__ATIME cleared (else EINVAL);
    strictatime wins over noatime, noatime over relatime, as in mount(2)."""
    assert bind_attrs(flags, clear) == want


@pytest.mark.parametrize("mount,kind,recursive,side", [
    ({"type": "bind", "source": "/a", "options": ["bind"]}, "bind", False, "mounts"),
    ({"type": "bind", "source": "/a", "options": ["rbind"]}, "bind", True, "mounts"),
    ({"type": "bind", "source": "/a"}, "bind", False, "mounts"),
    ({"type": "none", "source": "/a", "options": ["rbind"]}, "bind", True, "mounts"),
    ({"source": "/a", "options": ["bind", "ro"]}, "bind", False, "mounts"),
    ({"type": "tmpfs", "source": "tmpfs"}, "tmpfs", False, "mounts"),
    ({"type": "overlay", "source": "overlay", "options": ["lowerdir=/l"]}, "overlay", False,
     "mounts"),
    ({"type": "proc", "source": "proc"}, "proc", False, "ns_mounts"),
    ({"type": "sysfs", "source": "sysfs"}, "sysfs", False, "ns_mounts"),
    ({"type": "devpts", "source": "devpts"}, "devpts", False, "ns_mounts"),
    ({"type": "mqueue", "source": "mqueue"}, "mqueue", False, "ns_mounts"),
    ({"type": "cgroup", "source": "cgroup"}, "cgroup", False, "ns_mounts"),
    ({"type": "cgroup2", "source": "cgroup2"}, "cgroup2", False, "ns_mounts"),
    ({"type": "proc", "source": "/proc", "options": ["rbind"]}, "bind", True, "mounts"),
])
def test_mount_kind_and_side(tmp_path, mount, kind, recursive, side):
    cfg = runc_spec()
    cfg["mounts"] = [{"destination": "/m", **mount}]
    spec = oc.to_spec(cfg, make_bundle(tmp_path, cfg), "c1", available=ALL_CAPS)
    got = getattr(spec, side)
    assert len(got) == 1 and len(spec.mounts) + len(spec.ns_mounts) == 1
    assert (got[0].kind, got[0].recursive, got[0].dst) == (kind, recursive, "/m")


@pytest.mark.parametrize("extra,want", [
    ({"options": ["rbind", "ridmap"]}, ((), (), True)),
    ({"options": ["bind", "idmap"]}, ((), (), False)),
    ({"options": ["rbind"], "uidMappings": [{"containerID": 0, "hostID": 7, "size": 2}],
      "gidMappings": [{"containerID": 1, "hostID": 8, "size": 3}]},
     (((0, 7, 2),), ((1, 8, 3),), False)),
])
def test_idmapped_bind(tmp_path, extra, want):
    """A bind's own mappings, or "idmap"/"ridmap" with the container's user namespace."""
    cfg = runc_spec()
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 100000, "size": 65536}]
    cfg["mounts"] = [{"destination": "/m", "source": "/srv", "type": "bind", **extra}]
    spec = oc.to_spec(cfg, make_bundle(tmp_path, cfg), "c1", available=ALL_CAPS)
    assert spec.mounts[0].idmap == want
    assert spec.host_plan[1].idmap == want


def test_source_defaults_to_the_type(tmp_path):
    cfg = runc_spec()
    cfg["mounts"] = [{"destination": "/t", "type": "tmpfs"}]
    spec = oc.to_spec(cfg, make_bundle(tmp_path, cfg), "c1", available=ALL_CAPS)
    assert spec.mounts[0].src == "tmpfs"
