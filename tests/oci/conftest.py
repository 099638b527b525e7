"""OCI bundles for the runtime-CLI tests: a copy of the busybox rootfs and `jailer spec`'s
config, in a private state root (``--root``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import JAILER


@pytest.fixture
def oci_root(tmp_path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def bundle(tmp_path, data_dir, oci_root):
    """A bundle dir with config.json (from `jailer spec`, terminal off) and a rootfs; edit
    with bundle.config(**process changes)."""
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copytree(data_dir / "images" / "busybox" / "rootfs", b / "rootfs", symlinks=True)
    r = subprocess.run([JAILER, "spec", "--bundle", str(b)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sleep", "30"]
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def set_config(bundle: Path, **changes) -> dict:
    cfg = json.loads((bundle / "config.json").read_text())
    for key, value in changes.items():
        node = cfg
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    (bundle / "config.json").write_text(json.dumps(cfg))
    return cfg


def run_jailer(args: list[str], *, check: bool = False, prefix: tuple[str, ...] = (),
               **kw) -> subprocess.CompletedProcess:
    """``jailer ARGS`` (run by the ``prefix`` command, if any) with stdout and stderr to
    files, not pipes: a created container keeps the runtime's stdio (as with runc), so a
    pipe would not see EOF before it ends."""
    import tempfile

    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        r = subprocess.run([*prefix, JAILER, *args], stdout=out, stderr=err, text=True,
                           timeout=60, **kw)
        out.seek(0)
        err.seek(0)
        r.stdout, r.stderr = out.read().decode(), err.read().decode()
    if check and r.returncode != 0:
        raise AssertionError(f"jailer {' '.join(args)} -> {r.returncode}: {r.stderr}")
    return r


@pytest.fixture
def oci(oci_root):
    """Run ``jailer --root ROOT ARGS``; containers left behind are force-deleted."""

    def run(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        return run_jailer(["--root", str(oci_root), *args], check=check, **kw)

    yield run
    for entry in os.listdir(oci_root):
        run("delete", "--force", entry)
    assert os.listdir(oci_root) == [], "state left behind"
