"""Build (once, cached by source hash) the static ``jailer-init`` reaper used by ``--init``."""

from __future__ import annotations

import hashlib
import os
import subprocess

SOURCE = os.path.join(os.path.dirname(__file__), "init.c")


def init_binary(data_dir: str) -> str:
    """Path of the compiled init for the current source, compiling it if needed."""
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(data_dir, "libexec", f"jailer-init-{digest}")
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), mode=0o755, exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    cc = os.environ.get("CC", "cc")
    try:
        subprocess.run([cc, "-static", "-Os", "-s", "-o", tmp, SOURCE], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        raise RuntimeError(f"cannot build jailer-init with {cc}: {e} "
                           f"{detail.decode(errors='replace').strip()[:200]}") from None
    os.chmod(tmp, 0o755)
    os.rename(tmp, out)
    return out
