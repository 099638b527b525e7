"""Build (once, cached by source hash) the static C helpers: ``jailer-init``, the reaper used by
``--init``, and ``jailer-monitor``, the process that stays with a detached jail."""

from __future__ import annotations

import hashlib
import os
import subprocess

HERE = os.path.dirname(__file__)
SOURCE = os.path.join(HERE, "init.c")
MONITOR_SOURCE = os.path.join(HERE, "monitor.c")


def init_binary(data_dir: str) -> str:
    """Path of the compiled init for the current source, compiling it if needed."""
    return build("jailer-init", SOURCE, data_dir)


def monitor_binary(data_dir: str) -> str:
    """Path of the compiled monitor for the current source, compiling it if needed."""
    return build("jailer-monitor", MONITOR_SOURCE, data_dir)


def build(name: str, source: str, data_dir: str) -> str:
    """``<data_dir>/libexec/NAME-<hash of source>``: a static binary, built on first use."""
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(data_dir, "libexec", f"{name}-{digest}")
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), mode=0o755, exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    cc = os.environ.get("CC", "cc")
    try:
        subprocess.run([cc, "-static", "-Os", "-s", "-o", tmp, source], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        raise RuntimeError(f"cannot build {name} with {cc}: {e} "
                           f"{detail.decode(errors='replace').strip()[:200]}") from None
    fd = os.open(tmp, os.O_RDONLY)
    try:  # on disk before it gets its final name: a crash must not leave an empty binary
        os.fchmod(fd, 0o755)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, out)
    return out
