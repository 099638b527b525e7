"""runtime.md's lifecycle as engines rely on it: kill in every live status and its signal
forms, the idempotent verbs of runc (kill --all of a stopped container, delete --force of one
that is gone), delete refusing a container that is not stopped, the pid file."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import JAILER
from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import run_jailer, set_config

pytestmark = pytest.mark.root


def state(oci, cid: str) -> dict:
    return json.loads(oci("state", cid, check=True).stdout)


@pytest.mark.vm
@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "15", "KILL", "SIGKILL", "9", "USR1"])
def test_kill_reaches_a_created_container_waiting_for_start(oci, bundle, sig):
    # pid 1 still waits on the exec fifo; as the init of its pid namespace it would ignore
    # a signal it has no handler for, so `kill` of a created container must still end it
    oci("create", "--bundle", str(bundle), "k1", check=True)
    assert state(oci, "k1")["status"] == "created"
    oci("kill", "k1", sig, check=True)
    wait_for(lambda: state(oci, "k1")["status"] == "stopped", what="stopped", timeout=5)
    r = oci("start", "k1")
    assert r.returncode == 1 and "cannot start a container that has stopped" in r.stderr
    oci("delete", "k1", check=True)


def test_kill_delivers_the_signal_to_the_running_process(oci, bundle):
    set_config(bundle, process__args=["sh", "-c", "trap 'touch /got-USR2; exit 0' USR2; "
                                      "echo ready > /ready; sleep 30 & wait $!"],
               root__readonly=False)
    oci("create", "--bundle", str(bundle), "k2", check=True)
    oci("start", "k2", check=True)
    wait_for(lambda: (bundle / "rootfs" / "ready").exists(), what="the trap set")
    assert not (bundle / "rootfs" / "got-USR2").exists()
    oci("kill", "k2", "USR2", check=True)
    wait_for(lambda: state(oci, "k2")["status"] == "stopped", what="stopped", timeout=5)
    assert (bundle / "rootfs" / "got-USR2").exists()
    oci("delete", "k2", check=True)


def test_kill_all_of_a_stopped_container_succeeds_as_in_runc(oci, bundle):
    # containerd's shim kills --all after init exits ("failed to kill init's children"
    # otherwise); plain kill of a stopped container stays an error (runtime.md)
    set_config(bundle, process__args=["true"])
    oci("create", "--bundle", str(bundle), "k3", check=True)
    oci("start", "k3", check=True)
    wait_for(lambda: state(oci, "k3")["status"] == "stopped", what="stopped")
    r = oci("kill", "--all", "k3", "9")
    assert r.returncode == 0, r.stderr
    r = oci("kill", "k3", "9")
    assert r.returncode == 1 and "container not running" in r.stderr
    oci("delete", "k3", check=True)
    r = oci("kill", "--all", "k3", "9")  # but a container that does not exist: an error
    assert r.returncode == 1 and "container does not exist" in r.stderr


def test_delete_force_of_a_container_that_is_gone_succeeds_as_in_runc(oci, oci_root):
    r = oci("delete", "--force", "never-made")
    assert r.returncode == 0, r.stderr
    r = oci("delete", "never-made")  # without --force: runc's error
    assert r.returncode == 1 and "container does not exist" in r.stderr
    r = oci("delete", "--force", "../escape")  # an id must still be an id
    assert r.returncode == 1
    assert os.listdir(oci_root) == []


def test_delete_of_a_created_container_fails_and_has_no_effect(oci, bundle):
    oci("create", "--bundle", str(bundle), "k4", check=True)
    pid = state(oci, "k4")["pid"]
    r = oci("delete", "k4")
    assert r.returncode == 1 and "that is not stopped: created" in r.stderr
    time.sleep(0.2)
    assert state(oci, "k4")["status"] == "created" and os.path.exists(f"/proc/{pid}")
    oci("delete", "--force", "k4", check=True)
    assert not os.path.exists(f"/proc/{pid}/status") or "zombie" in open(
        f"/proc/{pid}/status").read()


@pytest.mark.vm
def test_a_relative_pid_file_is_written_before_create_returns(bundle, oci_root, tmp_path):
    # runc takes --pid-file relative to its working directory
    work = tmp_path / "work"
    work.mkdir()
    r = run_jailer(["--root", str(oci_root), "create", "--bundle", str(bundle),
                    "--pid-file", "pid", "k5"], cwd=work)
    assert r.returncode == 0, r.stderr
    pid = int((work / "pid").read_text())
    st = json.loads(run_jailer(["--root", str(oci_root), "state", "k5"], check=True).stdout)
    assert st["pid"] == pid and st["status"] == "created"
    run_jailer(["--root", str(oci_root), "delete", "--force", "k5"], check=True)


def test_state_answers_in_every_status(oci, bundle, oci_root, tmp_path):
    # creating: asked from a prestart hook (create is under way), then created, running,
    # stopped; while created or running, the state's pid is pid 1's
    seen = tmp_path / "seen"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\n{JAILER} --root {oci_root} state k6 > {seen}\n")
    hook.chmod(0o755)
    set_config(bundle, process__args=["sleep", "30"], hooks={"prestart": [
        {"path": str(hook)}]})
    oci("create", "--bundle", str(bundle), "k6", check=True)
    during = json.loads(seen.read_text())
    st = state(oci, "k6")
    assert (during["status"], st["status"]) == ("creating", "created")
    assert during["id"] == "k6" and st["pid"] > 0
    oci("start", "k6", check=True)
    assert state(oci, "k6")["status"] == "running"
    oci("kill", "k6", "KILL", check=True)
    wait_for(lambda: state(oci, "k6")["status"] == "stopped", what="stopped")
    assert state(oci, "k6")["pid"] == 0  # (as runc's)
    oci("delete", "k6", check=True)
