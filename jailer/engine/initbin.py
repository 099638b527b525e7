"""Build (once, cached by source hash) the static C helpers: ``jailer-init``, the reaper used by
``--init``, and ``jailer-monitor``, the process that stays with a detached jail."""

from __future__ import annotations

import hashlib
import os

from jailer.core.errors import JailerError

HERE = os.path.dirname(__file__)
SOURCE = os.path.join(HERE, "init.c")
MONITOR_SOURCE = os.path.join(HERE, "monitor.c")


def init_binary(data_dir: str) -> str:
    """Path of the compiled init for the current source, compiling it if needed."""
    return build("jailer-init", SOURCE, data_dir, needed_by="--init")


def monitor_binary(data_dir: str) -> str:
    """Path of the compiled monitor for the current source, compiling it if needed."""
    return build("jailer-monitor", MONITOR_SOURCE, data_dir, needed_by="a named jail")


def build(name: str, source: str, data_dir: str, needed_by: str = "jailer") -> str:
    """``<data_dir>/libexec/NAME-<hash of source>``: a static binary, built on first use.

    Without a C compiler (``$CC``, else ``cc``) or when the build fails: ``JailerError``
    saying what ``needed_by`` is missing, and nothing is left behind."""
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(data_dir, "libexec", f"{name}-{digest}")
    if os.path.exists(out):
        return out
    import shutil  # only to build: not on the path of a start that finds the binary
    import subprocess

    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise JailerError(f"{needed_by} needs a C compiler ({cc}) to build {name} once: "
                          "apt-get install gcc libc6-dev")
    libexec = os.path.dirname(out)
    os.makedirs(libexec, mode=0o755, exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        subprocess.run([cc, "-static", "-Os", "-s", "-o", tmp, source], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        _remove(tmp, libexec)
        detail = (getattr(e, "stderr", b"") or b"").decode(errors="replace")
        detail = " ".join(detail.split())[:200] or str(e)
        raise JailerError(f"{needed_by}: cannot build {name} with {cc}: {detail} "
                          "(a static build needs libc6-dev)") from None
    fd = os.open(tmp, os.O_RDONLY)
    try:  # on disk before it gets its final name: a crash must not leave an empty binary
        os.fchmod(fd, 0o755)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, out)
    return out


def _remove(tmp: str, libexec: str) -> None:
    """Undo a failed build: its output, and the libexec dir if nothing else is in it."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    try:
        os.rmdir(libexec)
    except OSError:  # not empty: other helpers live there
        pass
