"""``--allow WORD`` relaxes exactly one rule of the jail policy: its own attack succeeds (inside
the container's own namespaces; the host is checked unchanged as always) and every other
word's attack still fails with EPERM.
"""

from __future__ import annotations

import errno as E

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied, assert_succeeded

pytestmark = pytest.mark.root

ATTACKS = {  # allow word -> the one attack it lets through
    "mount": f"{ATTACK} mount",  # a tmpfs on /mnt (unmounted again)
    "mknod": "mknod /dev/shm/whiteout c 0 0",  # a whiteout: real devices stay refused
    "netconfig": "ip addr add 10.9.9.9/32 dev lo",  # the container's own loopback
    "raw-sockets": f"{ATTACK} rawsock",
    "nesting": "unshare -U true",
}


def run_matrix_row(attack, level: str, words: list[str]):
    opts = [arg for word in words for arg in ("--allow", word)]
    return attack(level, "".join(f"try {w} {cmd}\n" for w, cmd in ATTACKS.items()), *opts)


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("word", [None, *ATTACKS], ids=["none", *ATTACKS])
def test_each_allow_word_relaxes_exactly_its_rule(attack, level, word):
    out = run_matrix_row(attack, level, [word] if word else [])
    for other in ATTACKS:
        if other == word:
            assert_succeeded(out, other)
        else:
            assert_denied(out, other, E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_allow_mknod_still_refuses_real_devices(attack, level):
    """The filter lets mknod through; the kernel still refuses device nodes to a user
    namespace, so only the whiteout (0:0) is made."""
    out = attack(level, "try null mknod /dev/shm/null c 1 3\ntry loop mknod /dev/shm/loop b 7 0\n"
                        "try whiteout mknod /dev/shm/whiteout c 0 0", "--allow", "mknod")
    assert_denied(out, "null", E.EPERM)
    assert_denied(out, "loop", E.EPERM)
    assert_succeeded(out, "whiteout")


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_allow_nesting_does_not_allow_mounting_inside(attack, level):
    """A nested user namespace regains capabilities, but the filter still refuses mount."""
    out = attack(level, "try nested unshare -U -r -m sh -c "
                        "'mount -t tmpfs none /mnt && echo mounted'", "--allow", "nesting")
    assert_denied(out, "nested", E.EPERM)
    assert "mounted" not in out["nested"].text


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_allow_netconfig_stays_in_the_containers_netns(attack, level):
    out = attack(level, "try link ip link add jsec0 type veth\ntry addr ip addr add "
                        "10.9.9.9/32 dev lo\ntry route ip route add 10.9.8.0/24 dev lo\n"
                        "try show ip -o addr show lo", "--allow", "netconfig")
    for label in ("link", "addr", "route"):
        assert_succeeded(out, label)
    assert "10.9.9.9/32" in out["show"].text


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_all_words_together(attack, level):
    out = run_matrix_row(attack, level, list(ATTACKS))
    for word in ATTACKS:
        assert_succeeded(out, word)
