"""The verbs named jails and OCI containers share (state, ps, pause, resume, exec, stats,
kill, delete) work the same way on both through one handle, each with its own kind's words
when it refuses."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.jails.conftest import wait_for
from tests.oci.conftest import bundle, oci_root, run_jailer  # noqa: F401 - fixtures below

pytestmark = pytest.mark.root


@pytest.fixture
def run(jail_env):
    """``jailer ARGS`` in the jails' env (stdio to files, as the OCI tests run it)."""

    def go(*args: str, check: bool = False) -> subprocess.CompletedProcess:
        return run_jailer(list(args), check=check, env=jail_env)

    return go


def test_the_shared_verbs_on_a_jail_and_a_container(jl, run, bundle):  # noqa: F811
    jl("create", "hj", "--image", "busybox", "--memory", "32M", "--", "sleep", "1000",
       check=True)
    jl("start", "hj", check=True)
    run("create", "--bundle", str(bundle), "hc", check=True)
    run("start", "hc", check=True)
    words = {"hj": {"paused": "cannot exec in jail hj: it is paused",
                    "not paused": "cannot resume jail hj: it is not paused",
                    "stopped": "cannot signal jail hj: it is not running"},
             "hc": {"paused": "cannot exec in a paused container",
                    "not paused": "container not paused",
                    "stopped": "container not running"}}

    def state(name: str) -> dict:
        return json.loads(run("state", name, check=True).stdout)

    try:
        for name in ("hj", "hc"):
            st = state(name)
            assert st["id"] == name and st["status"] == "running" and st["pid"] > 0
            assert st["pid"] in json.loads(run("ps", "--format", "json", name,
                                               check=True).stdout)
            table = run("ps", name, check=True).stdout.splitlines()
            assert table[0].split()[0] == "PID" and table[0].split()[-1] == "COMMAND"
            assert any("sleep" in line for line in table[1:]), table
            assert "pids_current" in json.loads(run("stats", "--json", name,
                                                    check=True).stdout)
            assert run("exec", name, "echo", "in").stdout == "in\n"

            run("pause", name, check=True)
            assert state(name)["status"] == "paused"
            r = run("exec", name, "true")
            assert r.returncode == 1 and words[name]["paused"] in r.stderr, r.stderr
            run("resume", name, check=True)
            assert state(name)["status"] == "running"
            r = run("resume", name)
            assert r.returncode == 1 and words[name]["not paused"] in r.stderr, r.stderr

            run("kill", name, "KILL", check=True)
            wait_for(lambda n=name: state(n)["status"] == "stopped", what=f"{name} stopped")
            assert state(name)["pid"] == 0
            r = run("kill", name)
            assert r.returncode == 1 and words[name]["stopped"] in r.stderr, r.stderr
    finally:
        run("delete", "--force", "hc")
        jl("rm", "--force", "hj")
    for verb in ("state", "ps", "pause", "kill", "stats"):
        r = run(verb, "hc")
        assert r.returncode == 1 and r.stderr == "jailer: container does not exist\n", \
            (verb, r.stderr)
