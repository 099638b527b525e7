"""Fixtures of the escape suite: the compiled attack binary, a private copy of the busybox
root per test, host-side targets (a marker file, a sleeping process), and ``attack``, which
runs one attack script in a fresh container and checks that the host did not change.

The root ``tests/conftest.py`` provides ``jailer_cmd``, ``jenv``, ``rootfs``, ``data_dir`` and
the leak check (every test module here sets ``pytestmark = pytest.mark.root``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# named-jail fixtures (jl, jail_env, jail_root) for the attacks on jails and their exec
from tests.integration.jails.conftest import jail_env, jail_root, jl, listing  # noqa: F401
from tests.oci.conftest import bundle, oci, oci_root  # noqa: F401 - OCI containers attacked

from .helpers import (
    PRELUDE,
    TOOLS_DIR,
    Attempt,
    Outcome,
    PrivateCgroups,
    assert_host_unchanged,
    build_attack,
    host_state,
)

# attack.c probes that are harmless on the host itself (invalid arguments, detached trees,
# throw-away keys): run directly as host root they give the "no policy" baseline.
HARMLESS_PROBES = (
    "mount", "fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "pivot_root", "umount2",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "acct",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
    "open_by_handle_at", "unshare_user", "clone_user", "clone3", "i386_getpid", "x32_getpid",
    "unknown", "rawsock", "packetsock", "status",
)


@pytest.fixture(scope="session")
def attack_bin(tmp_path_factory) -> Path:
    """attack.c compiled once per session into a directory the fixture owns."""
    return build_attack(tmp_path_factory.mktemp("sec-tools"))


@pytest.fixture(scope="session")
def host_baseline(attack_bin) -> dict[str, Attempt]:
    """Each harmless probe run as host root with no policy (in throw-away mount and network
    namespaces): what the chroot level, which adds no policy, must reproduce."""
    out = {}
    for probe in HARMLESS_PROBES:
        r = subprocess.run(["unshare", "-m", "-n", str(attack_bin), probe],
                           capture_output=True, text=True, timeout=30)
        out[probe] = Attempt(probe, r.returncode, r.stdout + r.stderr)
    return out


@pytest.fixture
def sec_root(rootfs, tmp_path) -> Path:
    """A private copy of the busybox root: jail level writes in place, chroot level creates
    device nodes in it; the whole copy is deleted afterwards."""
    root = tmp_path / "root"
    shutil.copytree(rootfs, root, symlinks=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def marker() -> Path:
    """A unique file in the host's /tmp: seeing it from inside means seeing the host's root."""
    path = Path(f"/tmp/escape-marker-{secrets.token_hex(6)}")
    path.write_text("host\n")
    yield path
    path.unlink(missing_ok=True)


class Sleeper:
    def __init__(self) -> None:
        # a unique argument, so the process can be told apart from every other sleep
        self.token = f"{secrets.randbelow(9000) + 1000}.{secrets.randbelow(10**6):06d}"
        self.proc = subprocess.Popen(["sleep", self.token], stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sleeper():
    """A process on the host, started (and reaped) by the test."""
    s = Sleeper()
    yield s
    s.stop()


class Attacker:
    """``attack(level, script, *jailer_options)`` runs ``script`` (with the ``try`` helper and
    the attack binary at /x/attack) as root in a fresh container and returns an ``Outcome``,
    after checking that the host's state is what it was before.

    At chroot level the run is wrapped in ``unshare -m`` (and ``-n`` with ``netns=True``) so
    that what succeeds there stays in throw-away namespaces; jailer does no bind mounts at
    that level, so the attack binary is copied into the root instead.
    """

    def __init__(self, jailer_cmd: str, jenv: dict, root: Path, tools: Path) -> None:
        self.jailer_cmd, self.jenv, self.root, self.tools = jailer_cmd, jenv, root, tools

    def argv(self, level: str, script: str, *opts: str, netns: bool = False) -> list[str]:
        argv = [self.jailer_cmd, "run", "--level", level, *opts]
        if level == "chroot":
            dest = self.root / TOOLS_DIR.lstrip("/")
            dest.mkdir(exist_ok=True)
            shutil.copy2(self.tools / "attack", dest / "attack")
            argv = ["unshare", "-m", *(["-n"] if netns else []), *argv]
        else:
            argv += ["--bind", f"{self.tools}:{TOOLS_DIR}:ro"]
        return [*argv, str(self.root), "/bin/sh", "-c", PRELUDE + script]

    def __call__(self, level: str, script: str, *opts: str, netns: bool = False,
                 ignore: tuple[str, ...] = (), pass_fds: tuple[int, ...] = (),
                 expect_rc: int | None = 0, timeout: float = 60) -> Outcome:
        argv = self.argv(level, script, *opts, netns=netns)
        cgroups = PrivateCgroups().create()
        try:
            before = host_state(cgroups.dirs)
            proc = subprocess.run(argv, env=self.jenv, text=True, capture_output=True,
                                  stdin=subprocess.DEVNULL, pass_fds=pass_fds,
                                  timeout=timeout, preexec_fn=cgroups.enter)
            outcome = Outcome(level, proc)
            assert_host_unchanged(before, ignore, cgroups.dirs)
        finally:
            leftovers = cgroups.remove()
        assert not leftovers, f"[{level}] cgroups left behind: {leftovers}"
        if expect_rc is not None:
            assert outcome.returncode == expect_rc, (
                f"[{level}] jailer exited {outcome.returncode}; stderr={proc.stderr[-2000:]!r} "
                f"stdout={proc.stdout[-2000:]!r}")
        return outcome


@pytest.fixture(scope="session")
def warm_runtime(data_dir) -> None:
    """One run per level before any snapshot, so that what a runtime sets up once per
    machine (a bridge, a parent cgroup, caches) is not taken for an attack's doing."""
    jailer = str(Path(sys.executable).parent / "jailer")  # as the root conftest's jailer_cmd
    env = {**os.environ, "JAILER_DATA": str(data_dir)}
    for level in ("jail", "container"):
        subprocess.run([jailer, "run", "--level", level, "busybox", "true"], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


@pytest.fixture
def attack(jailer_cmd, jenv, sec_root, attack_bin, warm_runtime) -> Attacker:
    return Attacker(jailer_cmd, jenv, sec_root, attack_bin.parent)
