"""Unit tests of the OCI front end (jailer.frontends.ociconfig): no root needed.

Shared material: ``RUNC_SPEC`` is what ``runc spec`` (runc 1.1.5, Debian) writes, verbatim;
``podman_config`` is the shape podman 4.x hands a runtime (bind mounts of its own files,
a joined network namespace, cgroup limits, seccomp, annotations).
"""

from __future__ import annotations

import copy
import json

from jailer.policy import caps

ALL_CAPS = frozenset(caps.CAPS)

RUNC_SPEC = json.loads(r"""
{
 "ociVersion": "1.0.2-dev",
 "process": {
  "terminal": true,
  "user": {
   "uid": 0,
   "gid": 0
  },
  "args": [
   "sh"
  ],
  "env": [
   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
   "TERM=xterm"
  ],
  "cwd": "/",
  "capabilities": {
   "bounding": [
    "CAP_AUDIT_WRITE",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE"
   ],
   "effective": [
    "CAP_AUDIT_WRITE",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE"
   ],
   "permitted": [
    "CAP_AUDIT_WRITE",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE"
   ],
   "ambient": [
    "CAP_AUDIT_WRITE",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE"
   ]
  },
  "rlimits": [
   {
    "type": "RLIMIT_NOFILE",
    "hard": 1024,
    "soft": 1024
   }
  ],
  "noNewPrivileges": true
 },
 "root": {
  "path": "rootfs",
  "readonly": true
 },
 "hostname": "runc",
 "mounts": [
  {
   "destination": "/proc",
   "type": "proc",
   "source": "proc"
  },
  {
   "destination": "/dev",
   "type": "tmpfs",
   "source": "tmpfs",
   "options": [
    "nosuid",
    "strictatime",
    "mode=755",
    "size=65536k"
   ]
  },
  {
   "destination": "/dev/pts",
   "type": "devpts",
   "source": "devpts",
   "options": [
    "nosuid",
    "noexec",
    "newinstance",
    "ptmxmode=0666",
    "mode=0620",
    "gid=5"
   ]
  },
  {
   "destination": "/dev/shm",
   "type": "tmpfs",
   "source": "shm",
   "options": [
    "nosuid",
    "noexec",
    "nodev",
    "mode=1777",
    "size=65536k"
   ]
  },
  {
   "destination": "/dev/mqueue",
   "type": "mqueue",
   "source": "mqueue",
   "options": [
    "nosuid",
    "noexec",
    "nodev"
   ]
  },
  {
   "destination": "/sys",
   "type": "sysfs",
   "source": "sysfs",
   "options": [
    "nosuid",
    "noexec",
    "nodev",
    "ro"
   ]
  },
  {
   "destination": "/sys/fs/cgroup",
   "type": "cgroup",
   "source": "cgroup",
   "options": [
    "nosuid",
    "noexec",
    "nodev",
    "relatime",
    "ro"
   ]
  }
 ],
 "linux": {
  "resources": {
   "devices": [
    {
     "allow": false,
     "access": "rwm"
    }
   ]
  },
  "namespaces": [
   {
    "type": "pid"
   },
   {
    "type": "network"
   },
   {
    "type": "ipc"
   },
   {
    "type": "uts"
   },
   {
    "type": "mount"
   }
  ],
  "maskedPaths": [
   "/proc/acpi",
   "/proc/asound",
   "/proc/kcore",
   "/proc/keys",
   "/proc/latency_stats",
   "/proc/timer_list",
   "/proc/timer_stats",
   "/proc/sched_debug",
   "/sys/firmware",
   "/proc/scsi"
  ],
  "readonlyPaths": [
   "/proc/bus",
   "/proc/fs",
   "/proc/irq",
   "/proc/sys",
   "/proc/sysrq-trigger"
  ]
 }
}
""")

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
                "CAP_SETUID", "CAP_SYS_CHROOT"]


def podman_config(rootfs: str, userdata: str) -> dict:
    """A config as podman 4.x writes it for ``podman run --memory 64m --cpus 0.5
    --pids-limit 2048 alpine sh`` (runtime runc, cgroupfs manager, netavark network)."""
    bind = ["bind", "rprivate"]
    return {
        "ociVersion": "1.1.0+dev",
        "process": {
            "user": {"uid": 0, "gid": 0, "umask": 18,
                     "additionalGids": [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27]},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm", "container=podman", "HOSTNAME=4f1c2d", "HOME=/root"],
            "cwd": "/",
            "capabilities": {"bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS,
                             "permitted": DEFAULT_CAPS},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576},
                        {"type": "RLIMIT_NPROC", "hard": 4194304, "soft": 4194304}],
            "oomScoreAdj": 0,
            "terminal": False,
            "apparmorProfile": "containers-default-0.50.1",
            "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2",
        },
        "root": {"path": rootfs},
        "hostname": "4f1c2d",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/etc/hostname", "type": "bind",
             "source": f"{userdata}/hostname", "options": bind},
            {"destination": "/etc/resolv.conf", "type": "bind",
             "source": f"{userdata}/resolv.conf", "options": bind},
            {"destination": "/etc/hosts", "type": "bind", "source": f"{userdata}/hosts",
             "options": bind},
            {"destination": "/dev/shm", "type": "bind", "source": f"{userdata}/shm",
             "options": [*bind, "nosuid", "noexec", "nodev"]},
            {"destination": "/run/.containerenv", "type": "bind",
             "source": f"{userdata}/.containerenv", "options": bind},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "annotations": {"io.container.manager": "libpod",
                        "org.opencontainers.image.stopSignal": "15"},
        "linux": {
            "sysctl": {"net.ipv4.ping_group_range": "0 0"},
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": 67108864, "swap": 134217728},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
                "pids": {"limit": 2048},
            },
            "cgroupsPath": "/libpod_parent/libpod-4f1c2d",
            "namespaces": [{"type": "pid"},
                           {"type": "network", "path": "/run/netns/netns-8a4d"},
                           {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                           {"type": "cgroup"}],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                    {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                ],
            },
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/sys"],
        },
    }


def make_bundle(tmp_path, cfg: dict | None = None, *, rootfs: str = "rootfs") -> str:
    """A bundle directory with an empty rootfs and ``cfg`` (default: RUNC_SPEC) written."""
    bundle = tmp_path / "bundle"
    (bundle / rootfs).mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(RUNC_SPEC if cfg is None else cfg))
    return str(bundle)


def runc_spec() -> dict:
    """A fresh deep copy of RUNC_SPEC."""
    return copy.deepcopy(RUNC_SPEC)


__all__ = ["ALL_CAPS", "RUNC_SPEC", "make_bundle", "podman_config", "runc_spec"]
