"""The Python API, as a grader or code-execution service would embed it."""

from __future__ import annotations

import pytest

import jailer
from jailer.core.errors import JailerError

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _data(monkeypatch, data_dir):
    monkeypatch.setenv("JAILER_DATA", str(data_dir))


def test_run_captures_output_and_status():
    r = jailer.run("busybox", ["sh", "-c", "echo out; echo err >&2; exit 5"],
                   level="jail", capture_output=True)
    assert (r.returncode, r.stdout, r.stderr) == (5, b"out\n", b"err\n")


def test_input_and_options():
    j = jailer.Jail("busybox", level="container", hostname="grader", timeout=5,
                    env=["N=3"], read_only=True, tmpfs=["/work"])
    r = j.run(["sh", "-c", 'read x; echo "$x $N $(hostname)" > /work/o; cat /work/o'],
              input=b"hello\n", capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello 3 grader\n"


def test_timeout_kills_untrusted_code():
    r = jailer.run("busybox", ["sh", "-c", "while :; do :; done"], timeout=0.5,
                   capture_output=True)
    assert r.returncode == 124


def test_errors_raise_jailer_error():
    with pytest.raises(JailerError, match="no image named"):
        jailer.run("nope", ["true"])
    with pytest.raises(TypeError, match="unknown option"):
        jailer.Jail("busybox", memroy="1G")


def test_exec_failure_raises_with_the_cli_exit_code():
    """Like subprocess, a command that cannot start raises; exit_code is what the CLI uses."""
    with pytest.raises(JailerError) as info:
        jailer.run("busybox", ["/nope"], capture_output=True)
    assert info.value.exit_code == 127 and info.value.stage == "exec"
