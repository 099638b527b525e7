"""remove_tree as root with another filesystem mounted inside the tree (the no-root cases of
the fd-based helpers are tests/unit/kernel/test_fsutil.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root


def test_remove_tree_leaves_a_mount_point_alone(tmp_path):
    """Another filesystem mounted inside the tree is neither entered nor emptied (as root,
    in a private mount namespace: the test's own tmpfs)."""
    t = tmp_path / "t"
    (t / "m").mkdir(parents=True)
    code = (f"mount -t tmpfs none {t}/m && echo keep > {t}/m/f && "
            f"{sys.executable} -c 'from jailer.kernel import fsutil; "
            f"fsutil.remove_tree(\"{t}\")'; cat {t}/m/f")
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", code],
                       capture_output=True, text=True, cwd=os.getcwd())
    assert r.stdout == "keep\n", r.stderr
    assert "another filesystem is mounted" in r.stderr
