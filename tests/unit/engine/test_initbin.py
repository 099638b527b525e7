"""Building the static helpers: a missing or failing C compiler is a JailerError, and a failed
build leaves nothing behind."""

from __future__ import annotations

import pytest

from jailer.core.errors import JailerError
from jailer.engine import initbin


def test_no_compiler_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(JailerError) as e:
        initbin.init_binary(str(tmp_path))
    assert str(e.value).startswith("--init needs a C compiler")
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")
    with pytest.raises(JailerError) as e:
        initbin.monitor_binary(str(tmp_path))
    assert "cannot build jailer-monitor with false" in str(e.value)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
