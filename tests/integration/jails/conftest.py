"""Fixtures for named jails: private config/run dirs, a test bridge and nft table, the
``jl`` runner, and a leak check for what detached jails leave (monitors, state, nft rules)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import JAILER

BRIDGE = "jlt0"
SUBNET = "10.231.77.0/24"
NFT_TABLE = "jailer_test"


def monitors() -> set[int]:
    """Processes that supervise or clean up after a detached jail."""
    out = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"jailer-monitor-" in argv[0] or argv[1:4] == [b"-m", b"jailer", b"_cleanup"]:
            out.add(int(pid))
    return out


def nft_tables() -> set[str]:
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {line for line in r.stdout.splitlines() if "jailer" in line}


@pytest.fixture(scope="session")
def jail_root():
    """Config and run dirs for the session's jails, under /tmp itself: a service user must
    read the system config as it would /etc/jailer (pytest's tmp dirs are private)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="jltest-jails-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def jail_env(data_dir, jail_root) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAILER_")}
    env.update(JAILER_DATA=str(data_dir), JAILER_SYSTEM_CONFIG=str(jail_root / "etc"),
               JAILER_RUN=str(jail_root / "run"), JAILER_BRIDGE=BRIDGE,
               JAILER_SUBNET=SUBNET, JAILER_NFT_TABLE=NFT_TABLE)
    return env


@pytest.fixture
def jl(jail_env, jail_root):
    """Run ``jailer ARGS`` for jails; returns CompletedProcess (text). Jails a failed test
    left defined are removed afterwards (a passing test removes its own)."""

    def run(*args: str, timeout: float = 60, check: bool = False,
            **kw) -> subprocess.CompletedProcess:
        r = subprocess.run([JAILER, *args], env=kw.pop("env", jail_env), text=True,
                           capture_output=True, timeout=timeout,
                           stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"jailer {' '.join(args)} -> {r.returncode}: {r.stderr}")
        return r

    yield run
    for path in sorted((jail_root / "etc" / "delegated").glob("*.toml")):
        if not path.name.endswith(".orig.toml"):
            run("undelegate", path.stem)
    for path in sorted((jail_root / "etc" / "jails").glob("*.toml")):
        run("rm", "--force", path.stem)


@pytest.fixture
def listing(jl):
    """``jailer list --json`` as {name: entry}."""

    def get() -> dict:
        r = jl("list", "--json", check=True)
        return {e["name"]: e for e in json.loads(r.stdout)}

    return get


def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(autouse=True)
def no_jail_leaks(request, jail_root, data_dir):
    """After each test: no monitors, jail state, definitions, jail files or nft tables."""
    if os.geteuid() != 0:
        yield
        return

    def snap() -> dict:
        def entries(p: Path) -> set[str]:
            return set(os.listdir(p)) if p.is_dir() else set()

        return {"monitors": monitors(), "nft": nft_tables(),
                "run": entries(jail_root / "run"), "defs": entries(jail_root / "etc" / "jails"),
                "delegated": entries(jail_root / "etc" / "delegated"),
                "jail files": entries(data_dir / "jails")}

    before = snap()
    yield
    after = snap()
    deadline = time.monotonic() + 10  # a monitor finishing its clean-up may linger a moment
    while after["monitors"] - before["monitors"] and time.monotonic() < deadline:
        time.sleep(0.05)
        after = snap()
    leaks = {k: sorted(map(str, set(after[k]) - set(before[k]))) for k in before}
    leaks = {k: v for k, v in leaks.items() if v}
    assert not leaks, f"jail leftovers after the test: {leaks}"
