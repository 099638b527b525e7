"""A Kubernetes-style pod, laid out as containerd's CRI lays it out, through the OCI calls its
runc shim makes (create --bundle --pid-file, start, exec, kill, kill --all, delete), with runc
and with jailer:

- the sandbox: a pause-only image (one static binary, no /proc, /sys or /dev directories), a
  read-only root, its own pid, ipc, uts and mount namespaces, and the network namespace the
  test made and wired with the real CNI bridge plugin (as the CRI plugin does before create);
- an app container joining the sandbox's network, IPC, UTS and PID namespaces by path;
- exec into it.

The CNI bridge lives in an outer network namespace the test makes too (standing for the
host's), so nothing touches this machine's own network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .conftest import BINARIES, RUNTIMES

pytestmark = [pytest.mark.root, pytest.mark.interop]

CNI_BIN = Path("/usr/lib/cni")
SUBNET, GATEWAY = "10.88.7.0/24", "10.88.7.1"
PAUSE_C = "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n"
MASKED = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def _run(*argv: str, **kw) -> subprocess.CompletedProcess:
    """``argv``'s status and output, read from files: a created container keeps the
    runtime's stdio (as the shim's are), so a pipe would see no EOF while it lives."""
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run(argv, stdout=out, stderr=err, text=True, timeout=60, **kw)
        out.seek(0)
        err.seek(0)
        r.stdout, r.stderr = out.read().decode(), err.read().decode()
    return r


def _own_cgroups() -> dict[str, str]:
    """{hierarchy dir: this process's cgroup path in it} (v1 controllers and v2)."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            name = ctrls.split(",")[0].removeprefix("name=") or "unified"
            if os.path.isdir(f"/sys/fs/cgroup/{name}"):
                out[f"/sys/fs/cgroup/{name}"] = path
            elif not ctrls and os.path.exists("/sys/fs/cgroup/cgroup.procs"):
                out["/sys/fs/cgroup"] = path  # pure v2
    return out


def _pod_cgroup() -> str:
    """The pod's cgroupsPath, below this process's own cgroup: absolute (as the kubelet's
    /kubepods/...) when this process sits at one path in every hierarchy, else relative
    (which runc, like jailer, takes from its own cgroup in each hierarchy)."""
    paths = set(_own_cgroups().values())
    if len(paths) == 1:
        return f"{paths.pop().rstrip('/')}/kubepods-test/pod1"
    return "kubepods-test/pod1"


def _remove_pod_cgroups(pod: str) -> None:
    """What the kubelet removes when the pod is gone: the pod's own levels (empty by now).
    A relative path: below our own cgroup, or (runc on this hybrid host's near-empty v2
    hierarchy) below that hierarchy's root."""
    for hierarchy, own in _own_cgroups().items():
        bases = [hierarchy] if pod.startswith("/") else [f"{hierarchy}{own.rstrip('/')}/",
                                                          f"{hierarchy}/"]
        for base in bases:
            for path in (pod, os.path.dirname(pod)):
                try:
                    os.rmdir(base + path)
                except FileNotFoundError:
                    pass


class NetNs:
    """A network namespace pinned on a file (as CNI's and the CRI plugin's are)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        r = _run("unshare", f"--net={path}", "true")
        assert r.returncode == 0, r.stderr

    def run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return _run("nsenter", f"--net={self.path}", *argv, **kw)

    def remove(self) -> None:
        subprocess.run(["umount", str(self.path)], check=False)
        self.path.unlink()


def _cni(outer: NetNs, pod: NetNs, command: str, data: Path) -> dict:
    """The CNI bridge plugin (with host-local IPAM) run as the CRI plugin runs it."""
    conf = {"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", "bridge": "cnitest0",
            "isGateway": True, "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]],
                     "dataDir": str(data)}}
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "pod1", "CNI_NETNS": str(pod.path),
           "CNI_IFNAME": "eth0", "CNI_PATH": str(CNI_BIN), "PATH": os.environ["PATH"]}
    r = outer.run(str(CNI_BIN / "bridge"), input=json.dumps(conf), env=env)
    assert r.returncode == 0, f"CNI {command}: {r.stdout} {r.stderr}"
    return json.loads(r.stdout) if r.stdout.strip() else {}


def _base_config(rootfs: str, args: list[str], readonly: bool) -> dict:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": rootfs, "readonly": readonly},
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/",
                    "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")},
                    "noNewPrivileges": True},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {"maskedPaths": MASKED, "readonlyPaths": READONLY, "resources": {}},
    }


def _sandbox_config(shm: Path, netns: Path, cgroups_path: str) -> dict:
    cfg = _base_config("rootfs", ["/pause"], readonly=True)
    cfg["process"]["user"] = {"uid": 65535, "gid": 65535}
    cfg["hostname"] = "podhost"
    cfg["mounts"].append({"destination": "/dev/shm", "type": "bind", "source": str(shm),
                          "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
    cfg["linux"]["cgroupsPath"] = cgroups_path
    cfg["linux"]["namespaces"] = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                                  {"type": "mount"}, {"type": "network", "path": str(netns)}]
    return cfg


def _app_config(sandbox_pid: int, cgroups_path: str) -> dict:
    cfg = _base_config("rootfs", ["sh", "-c", "echo app > /tmp/up; exec sleep 300"],
                       readonly=False)
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev"]})
    cfg["linux"]["cgroupsPath"] = cgroups_path
    ns = f"/proc/{sandbox_pid}/ns"
    cfg["linux"]["namespaces"] = [{"type": "mount"},
                                  {"type": "network", "path": f"{ns}/net"},
                                  {"type": "ipc", "path": f"{ns}/ipc"},
                                  {"type": "uts", "path": f"{ns}/uts"},
                                  {"type": "pid", "path": f"{ns}/pid"}]
    return cfg


class Shim:
    """The OCI calls containerd's runc shim makes, on one runtime binary."""

    def __init__(self, binary: str, root: Path, log: Path) -> None:
        self.binary, self.root, self.log = binary, root, log

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return _run(self.binary, "--root", str(self.root), "--log", str(self.log),
                    "--log-format", "json", *args)

    def state(self, cid: str) -> dict:
        r = self("state", cid)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def create(self, cid: str, bundle: Path) -> int:
        pid_file = bundle.parent / f"{cid}.pid"
        r = self("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
        assert r.returncode == 0, f"create {cid}: {r.stderr} {self.log_text()}"
        return int(pid_file.read_text())

    def stop(self, cid: str) -> None:
        """As the shim at task delete: kill init, kill --all, wait, delete."""
        self("kill", cid, "KILL")
        self("kill", "--all", cid, "KILL")
        deadline = time.monotonic() + 10
        while self.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        r = self("delete", cid)
        assert r.returncode == 0, r.stderr

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def _ns_ids(pid: int) -> dict[str, int]:
    return {n: os.stat(f"/proc/{pid}/ns/{n}").st_ino for n in ("net", "ipc", "uts", "pid")}


@pytest.fixture
def pause_binary(tmp_path) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc missing (scripts/setup installs it)")
    src = tmp_path / "pause.c"
    src.write_text(PAUSE_C)
    out = tmp_path / "pause"
    r = _run("gcc", "-static", "-O2", "-o", str(out), str(src))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("name", RUNTIMES)
def test_a_cri_style_pod_with_a_pause_sandbox_and_an_app_container(
        name, pause_binary, data_dir, tmp_path):
    if not (CNI_BIN / "bridge").exists():
        pytest.skip("CNI plugins missing (scripts/interop-setup installs them)")
    binary = BINARIES[name]
    work = tmp_path / "pod"
    work.mkdir(mode=0o700)
    shim = Shim(binary, work / "state", work / "log.json")
    pod_cgroup = _pod_cgroup()
    # the sandbox bundle: the pause binary and nothing else
    sb = work / "sandbox"
    (sb / "rootfs").mkdir(parents=True)
    shutil.copy(pause_binary, sb / "rootfs" / "pause")
    shm = work / "shm"
    shm.mkdir()
    outer, pod = NetNs(work / "outer-net"), NetNs(work / "pod-net")
    made = []
    try:
        outer.run("ip", "link", "set", "lo", "up")
        result = _cni(outer, pod, "ADD", work / "ipam")
        ip = result["ips"][0]["address"].split("/")[0]
        (sb / "config.json").write_text(json.dumps(
            _sandbox_config(shm, pod.path, f"{pod_cgroup}/sandbox")))
        spid = shim.create("sandbox", sb)
        made.append("sandbox")
        assert shim("start", "sandbox").returncode == 0, shim.log_text()
        assert shim.state("sandbox")["status"] == "running"
        # the app container joins the sandbox's namespaces by path
        app = work / "app"
        shutil.copytree(data_dir / "images" / "busybox" / "rootfs", app / "rootfs",
                        symlinks=True)
        (app / "config.json").write_text(json.dumps(_app_config(spid, f"{pod_cgroup}/app")))
        apid = shim.create("app", app)
        made.append("app")
        assert shim("start", "app").returncode == 0, shim.log_text()
        assert _ns_ids(apid) == _ns_ids(spid)
        # exec into it, as `crictl exec` does
        r = shim("exec", "app", "sh", "-c", "until [ -f /tmp/up ]; do sleep 0.05; done; "
                 "hostname; cat /tmp/up; ps -o comm; ip -4 addr show eth0; "
                 f"ping -c 1 -W 5 {GATEWAY} >/dev/null && echo reached")
        assert r.returncode == 0, r.stderr + shim.log_text()
        lines = r.stdout.split()
        assert lines[:2] == ["podhost", "app"], r.stdout
        assert "pause" in lines and "sleep" in lines, r.stdout   # one pid namespace
        assert ip in r.stdout and "reached" in lines, r.stdout  # the CNI link works
        # the sandbox's own view: its mount points made for it, the root read-only
        assert {"pause", "proc", "sys", "dev"} <= set(os.listdir(f"/proc/{spid}/root"))
        with open(f"/proc/{spid}/mountinfo") as f:
            root = next(line.split() for line in f if line.split()[4] == "/")
        assert "ro" in root[5].split(","), root
    finally:
        for cid in reversed(made):
            shim.stop(cid)
        _cni(outer, pod, "DEL", work / "ipam")
        pod.remove()
        outer.remove()
        _remove_pod_cgroups(pod_cgroup)
    assert os.listdir(work / "state") == []
