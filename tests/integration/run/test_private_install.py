"""jailer installed where only root can read it (a checkout under /root, a 0700 prefix): the
container's processes run as its own root, who cannot read jailer's files, so nothing may be
imported after the fork. Every level and plan operation (binds, tmpfs, /dev, the cgroup fs)
must still work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def private_install(tmp_path) -> str:
    inst = tmp_path / "private"
    inst.mkdir(mode=0o700)
    for pkg in ("jailer", "cgroups", "images"):
        shutil.copytree(REPO / pkg, inst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(inst, 0o700)
    return str(inst)


@pytest.mark.parametrize("binds", [False, True], ids=["plain", "binds"])
@pytest.mark.parametrize("level", ["jail", "container"])
def test_a_root_only_installation_starts_every_kind_of_mount(level, binds, private_install,
                                                              rootfs, jenv, tmp_path):
    src = tmp_path / "shared"
    src.mkdir()
    (src / "f").write_text("bound\n")
    entry = (f"import sys; sys.path[0:0] = [{private_install!r}, "
             f"{sysconfig.get_paths()['purelib']!r}]; sys.argv[0] = 'jailer'; "
             "from jailer.main import main; main()")
    extra = ["--bind", f"{src}:/mnt:ro", "--tmpfs", "/scratch", "--memory", "64M"] if binds \
        else []
    script = ("cat /mnt/f; touch /scratch/x && " if binds else "echo bound; ") + \
        "ls /dev/null /sys/fs/cgroup >/dev/null && echo ok"
    argv = [sys.executable, "-S", "-c", entry, "run", "--level", level, *extra, rootfs,
            "/bin/sh", "-c", script]
    # the control: the container's root cannot read the installation
    assert os.stat(private_install).st_mode & 0o077 == 0
    r = subprocess.run(argv, env=jenv, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "bound\nok\n", r.stdout + r.stderr
