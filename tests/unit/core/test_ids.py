"""The one id rule (runc's) and the jail-name rule, and that every checker uses them."""

import pytest

from jailer.core import ids
from jailer.core.errors import JailerError
from jailer.frontends import ociconfig
from jailer.objects import containers, state

BAD = ["a,b", "é", "..", ".", "", "x" * 1025, "a/b", "a b", "a:b", "x\n", "\n"]
GOOD = ["abc", "a.b", "a+b", "A_b-9", "...", "x" * 1024, "4f1c" * 16]


@pytest.mark.parametrize("cid", BAD)
def test_bad_ids_are_refused_everywhere(cid):
    assert not ids.valid_id(cid)
    assert not state.valid_id(cid)
    with pytest.raises(ociconfig.ConfigError, match="^invalid container id"):
        ociconfig.check_id(cid)
    with pytest.raises(JailerError, match="^invalid container ID format$"):
        containers._check_id(cid)


@pytest.mark.parametrize("cid", GOOD)
def test_good_ids_pass_everywhere(cid):
    assert ids.valid_id(cid)
    assert ociconfig.check_id(cid) == cid
    containers._check_id(cid)


@pytest.mark.parametrize("cid", [None, 5, b"abc", ["abc"]])
def test_an_id_is_a_string(cid):
    assert not ids.valid_id(cid)


@pytest.mark.parametrize("name,ok", [("web", True), ("a.b-c_d", True), ("x" * 63, True),
                                     ("x" * 64, False), ("-x", False), (".x", False),
                                     ("a,b", False), ("é", False), ("a+b", False),
                                     ("", False), ("a/b", False), ("abc\n", False)])
def test_jail_names(name, ok):
    assert ids.valid_name(name) is ok
