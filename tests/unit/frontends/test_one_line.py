"""A refusal is one line even when it echoes a value holding control characters (a newline
in a path that the cgroup library or the container's set-up quotes back)."""

from __future__ import annotations

from jailer.core import errors


def test_say_escapes_control_characters(capsys, monkeypatch):
    monkeypatch.delenv("JAILER_LOG", raising=False)
    errors.say("--memory '/x\ny': not a size\r\x1b[2J\x7f\tend")
    err = capsys.readouterr().err
    assert err == "jailer: --memory '/x\\ny': not a size\\x0d\\x1b[2J\\x7f\tend\n"
    assert err.count("\n") == 1
