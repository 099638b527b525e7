"""OCI namespaces (config-linux.md "Namespaces"): a namespace joined by ``path`` must be of
the declared type and exist, checked before anything starts; joining works for each type
an engine shares, as a Kubernetes pod's app containers join the sandbox's by path."""

from __future__ import annotations

import json
import os

import pytest

from tests.oci.conftest import set_config

pytestmark = pytest.mark.root

SHARED = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "cgroup": "cgroup"}


def namespaces(bundle, **paths: str) -> None:
    """The bundle's namespaces with those named in ``paths`` joined by path instead."""
    cfg = json.loads((bundle / "config.json").read_text())
    kept = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] not in paths]
    set_config(bundle, linux__namespaces=kept + [{"type": t, "path": p}
                                                 for t, p in paths.items()])


def ns_of(pid: int | str, name: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{name}")


def hook_mark(tmp_path) -> dict:
    """A prestart hook that leaves a file: it must not run when the config is refused."""
    return {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {tmp_path}/ran"]}]}


def test_path_of_another_type_is_refused_before_anything_starts(oci, bundle, tmp_path):
    set_config(bundle, hooks=hook_mark(tmp_path))
    namespaces(bundle, network="/proc/self/ns/ipc")
    r = oci("create", "--bundle", str(bundle), "c1")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        "jailer: config.json: linux.namespaces[5].path /proc/self/ns/ipc is a namespace of "
        "type ipc, not network"]
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("path, why", [
    ("/proc/999999999/ns/net", "No such file or directory"),
    ("/dev/null", "is not a namespace"),
])
def test_absent_or_non_namespace_path_fails_cleanly(oci, bundle, tmp_path, path, why):
    """One line naming the field; nothing is left (the oci fixture checks the state root)."""
    namespaces(bundle, network=path)
    r = oci("run", "--bundle", str(bundle), "c1")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert lines[0].startswith("jailer: config.json: linux.namespaces[5].path ") and why in \
        lines[0]


def test_pod_app_container_joins_the_sandbox_namespaces(oci, bundle, tmp_path):
    """A sandbox container (its own pid, network, ipc, uts and cgroup namespaces), then an
    app container joining each of them by path: it sees the sandbox's processes (the
    sandbox's first process is its pid 1) and shares every namespace it named."""
    set_config(bundle, hostname=None)
    oci("run", "--detach", "--bundle", str(bundle), "sandbox", check=True)
    sandbox = json.loads(oci("state", "sandbox", check=True).stdout)["pid"]
    namespaces(bundle, **{t: f"/proc/{sandbox}/ns/{n}" for t, n in SHARED.items()})
    names = " ".join(SHARED.values())
    set_config(bundle, process__args=[
        "sh", "-c", f"for n in {names}; do readlink /proc/self/ns/$n; done; "
        "cat /proc/1/cmdline; echo"])
    r = oci("run", "--bundle", str(bundle), "app")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:-1] == [ns_of(sandbox, n) for n in SHARED.values()]
    assert lines[-1] == "sleep\x0030\x00"
