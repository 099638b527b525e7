"""``jailer bench`` as root: the --quick run produces the table, the JSON and the PNG (no timing
asserts), a peer that is not installed is skipped with a note, and nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import JAILER

pytestmark = [pytest.mark.root, pytest.mark.slow]


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def leftovers(method: dict) -> list[str]:
    """What the run named as its own (working dir, bridge, nft table) and still exists; other
    benchmarks or test suites may run at the same time, so nothing else is looked at."""
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found = [p for p in (method["workdir"], f"/sys/class/net/{method['bridge']}")
             if os.path.exists(p)]
    return found + [t for t in nft.split() if t == method["nft_table"]]


def test_quick_run_gives_table_json_and_png(tmp_path):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = [JAILER, "bench", "--quick", "--save", str(out_json)]
    if has_matplotlib():
        args += ["--plot", str(out_png)]
    r = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "summary: speed in % of the host's" in r.stdout
    assert "start-to-exit of /bin/true" in r.stdout
    data = json.loads(out_json.read_text())
    assert data["method"]["quick"] is True
    assert {"cpu", "kernel", "cgroups"} <= set(data["machine"])
    for name, w in data["workloads"].items():
        assert w["results"], name
        if name != "density":
            assert w["results"]["host"]["status"] == "ok", name
            assert w["results"]["container"]["status"] == "ok", name
    assert data["workloads"]["density"]["results"]["container"]["density"]["jails"] == 3
    for s in data["subjects"].values():
        assert s["status"] == "ok" or s.get("note"), s
    assert leftovers(data["method"]) == []
    if not has_matplotlib():
        pytest.skip("matplotlib not installed: the PNG part is not checked "
                    "(pip install 'jailer[plot]')")
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_peer_that_is_not_installed_is_skipped_with_a_note(tmp_path):
    """PATH without runc and bwrap: they are skipped, the run still succeeds."""
    path = tmp_path / "bin"
    path.mkdir()
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for name in os.listdir(d) if os.path.isdir(d) else ():
            if name not in ("runc", "bwrap") and not (path / name).exists():
                os.symlink(os.path.join(d, name), path / name)
    env = {**os.environ, "PATH": str(path)}
    r = subprocess.run([JAILER, "bench", "--workloads", "start", "--subjects", "runc,bwrap",
                        "--runs", "1", "--warmup", "0", "--json"], env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["subjects"]["runc"]["status"] == "skipped"
    assert "runc not installed" in data["subjects"]["runc"]["note"]
    assert any(n.startswith("bwrap: skipped") for n in data["notes"])
    assert data["workloads"]["start"]["results"]["host"]["status"] == "ok"


def test_a_rootfs_without_the_workload_is_a_clear_message(tmp_path):
    (tmp_path / "etc").mkdir()
    r = subprocess.run([JAILER, "bench", "--quick", "--image", str(tmp_path),
                        "--workloads", "start"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "lacks" in r.stderr and "/bin/true" in r.stderr
