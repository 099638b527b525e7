"""Jail definitions (issue 14): the writer round-trips every string create accepts, and a
definition whose values create would refuse is refused on load and before a save."""

from __future__ import annotations

import tomllib

import pytest

from jailer.core.errors import JailerError
from jailer.frontends import jaildef

SURROGATES = range(0xD800, 0xE000)  # not Unicode scalar values: no UTF-8, no TOML form


def round_trip(value: str) -> str:
    d = {"name": "j", "image": "busybox", "command": [value], "run": {"env": [f"A={value}"]}}
    back = tomllib.loads(jaildef.dumps(d))
    assert back["run"]["env"] == [f"A={value}"]
    return back["command"][0]


def test_a_del_character_round_trips():
    assert round_trip("x\x7fy") == "x\x7fy"


def test_every_code_point_alone_up_to_0x2000_round_trips():
    for cp in range(0x2000):
        assert round_trip(f"a{chr(cp)}b") == f"a{chr(cp)}b", hex(cp)


def test_every_code_point_round_trips():
    cps = [cp for cp in range(0x110000) if cp not in SURROGATES]
    for i in range(0, len(cps), 8192):
        text = "".join(map(chr, cps[i:i + 8192]))
        assert round_trip(text) == text, hex(cps[i])


def test_what_toml_cannot_hold_is_refused_in_one_line(tmp_path):
    d = {"name": "j", "image": "busybox", "command": ["a\udcffb"], "run": {}}
    with pytest.raises(JailerError, match="not UTF-8 text"):
        jaildef.dumps(d)
    with pytest.raises(JailerError, match="not UTF-8 text"):
        jaildef.save(d, str(tmp_path), new=True)
    assert list(tmp_path.rglob("*.toml*")) == []  # nothing written, not even a temp file


def test_save_and_load_round_trip(tmp_path):
    d = {"name": "j", "image": "busybox", "hostname": "j", "net": "loopback",
         "restart": "no", "command": ["sh", "-c", "echo \x7f\x1b"],
         "run": {"env": ["A=x\x7fy", "B=\t\n\r\"\\"], "read_only": True, "rlimit": ["core=0"]},
         "uid_base": 1_000_065_536}
    jaildef.save(d, str(tmp_path), new=True)
    back = jaildef.load("j", str(tmp_path))
    assert back == d


def write(tmp_path, text: str) -> None:
    (tmp_path / "jails").mkdir(exist_ok=True)
    (tmp_path / "jails" / "j.toml").write_text('image = "busybox"\n' + text)


@pytest.mark.parametrize("text,words", [
    ("[run]\nbind = 5\n", "[run] bind 5: must be a list of strings"),
    ("[run]\ntmpfs = [1, 2]\n", "[run] tmpfs [1, 2]: must be a list of strings"),
    ('[run]\nlevel = "fortress"\n', "[run] level fortress: choose from"),
    ("[run]\nmemory_swap = true\n", "[run] memory_swap True: must be a string"),
    ('[run]\ntimeout = "soon"\n', "[run] timeout: not an option of a named jail"),
    ("[run]\ntimeout = 5\n", "[run] timeout: not an option of a named jail"),
    ('[run]\nbogus = "x"\n', "[run] bogus x: is not an option of jailer run"),
    ('timeout = "soon"\n', "unknown key 'timeout' (a named jail has no such option)"),
    ('memory = "64M"\n', "unknown key 'memory' (jailer run's options go in the [run] table)"),
    ("uid_base = -1\n", "uid_base -1: must be a host id from 1 to"),
    ("uid_base = 99999999999\n", "uid_base 99999999999: must be a host id"),
    ("uid_base = 0\n", "uid_base 0: must be a host id from 1"),
    ("uid_base = true\n", "uid_base must be an integer"),
    ("command = [1, 2]\n", "command [1, 2]: 1 is not a string"),
    ('command = ["a\\u0000b"]\n', "is not a string without NUL"),
    ('hostname = "a/b"\n', "hostname a/b: must be letters"),
    ('net = "wifi"\n', "net wifi: choose from"),
    ('restart = "sometimes"\n', "restart sometimes: choose from"),
    ('ports = ["80:x"]\n', "is not HOSTPORT:JAILPORT"),
    ('ip = "10.0.0.300"\n', "not an IP address"),
    ('rootfs = "/srv/r"\n', "give one of image (a name) or rootfs"),
    ("run = 5\n", "[run] must be a table"),
])
def test_a_hand_edited_definition_is_checked_on_load(tmp_path, text, words):
    write(tmp_path, text)
    with pytest.raises(JailerError) as info:
        jaildef.load("j", str(tmp_path))
    assert words in str(info.value) and "\n" not in str(info.value), str(info.value)
    jaildef.load("j", str(tmp_path), check=False)  # what stop and rm may read


def test_a_relative_rootfs_is_refused(tmp_path):
    (tmp_path / "jails").mkdir()
    (tmp_path / "jails" / "j.toml").write_text('rootfs = "busybox"\n')
    with pytest.raises(JailerError, match="rootfs busybox: must be an absolute path"):
        jaildef.load("j", str(tmp_path))


def test_save_refuses_what_load_would(tmp_path):
    with pytest.raises(JailerError, match="not an image name"):
        jaildef.save({"name": "j", "image": "../../../../etc", "run": {}}, str(tmp_path))
    assert not (tmp_path / "jails").exists() or list((tmp_path / "jails").iterdir()) == []
