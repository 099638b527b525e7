"""Debian root filesystems made with debootstrap (like ``xen-create-image --debootstrap``).

* The mirror defaults to the one apt uses on this machine: the first http(s) ``deb`` source
  in ``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/*.{list,sources}`` that carries
  the suite (else the first Debian archive there, else http://deb.debian.org/debian).
* Before anything is created, ``MIRROR/dists/SUITE/Release`` must answer within a few
  seconds: a dead mirror is one clear line, not a debootstrap hang.
* Downloaded packages stay in a cache (``/var/cache/jailer/debootstrap/<suite>-<arch>``,
  ``debootstrap --cache-dir``), so a rebuild downloads only the indexes.
* debootstrap runs in a private mount namespace (``unshare -m``): the /proc and /sys mounts it
  makes in the target vanish with it, even if it is killed, so removing a failed build can
  never reach into a mounted filesystem.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from images.progress import Progress
from images.store import ImageError, Store, check_name, host_arch

DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE_ROOT = "/var/cache/jailer/debootstrap"
VARIANTS = ("minbase", "buildd", "default")
SCRIPTS = "/usr/share/debootstrap/scripts"
_SUITE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}$")
_DPKG_ARCH = {"386": "i386", "ppc64le": "ppc64el", "arm": "armhf"}
STEPS = ("Retrieving", "Validating", "Extracting", "Unpacking", "Configuring", "Installing")


# ── mirrors ───────────────────────────────────────────────────────────────────────────────
def apt_sources(etc: str = "/etc/apt") -> list[tuple[str, list[str]]]:
    """``(url, suites)`` of every enabled ``deb`` source apt reads, in apt's order."""
    out: list[tuple[str, list[str]]] = []
    files = [os.path.join(etc, "sources.list")]
    files += sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.list"))
                    + glob.glob(os.path.join(etc, "sources.list.d", "*.sources")))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            out += _deb822(text)
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    out.append((words[1], [words[2]]))
    return out


def _deb822(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        out += [(url, suites) for url in fields.get("uris", "").split()]
    return out


def default_mirror(suite: str, etc: str = "/etc/apt") -> str:
    """The mirror apt uses here for ``suite`` (see the module docstring)."""
    http = [(u.rstrip("/"), s) for u, s in apt_sources(etc)
            if u.startswith(("http://", "https://"))]
    for url, suites in http:
        if suite in suites:
            return url
    for url, _ in http:
        if url.endswith("/debian"):
            return url
    return DEFAULT_MIRROR


def check_mirror(mirror: str, suite: str, timeout: float = 5.0) -> None:
    """ImageError unless ``MIRROR/dists/SUITE/Release`` answers within ``timeout`` seconds."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    if mirror.startswith("file://") or mirror.startswith("/"):
        path = url.removeprefix("file://")
        if not os.path.isfile(path):
            raise ImageError(f"mirror {mirror} has no suite {suite!r} ({path} is missing)")
        return
    if not mirror.startswith(("http://", "https://")):
        raise ImageError(f"mirror {mirror!r}: expected an http://, https:// or file:// URL")
    result: list[BaseException | None] = []

    def probe() -> None:
        import urllib.error
        import urllib.request

        try:
            req = urllib.request.Request(url, headers={"User-Agent": "jailer-image"})
            with urllib.request.urlopen(req, timeout=timeout) as r:
                r.read(1)
            result.append(None)
        except urllib.error.HTTPError as e:
            result.append(ImageError(f"mirror {mirror} has no suite {suite!r} ({url}: HTTP "
                                     f"{e.code} {e.reason})"))
        except BaseException as e:  # URLError, timeouts, DNS failures
            reason = getattr(e, "reason", e)
            reason = getattr(reason, "strerror", None) or str(reason) or type(e).__name__
            result.append(ImageError(f"mirror {mirror} does not answer ({reason}; checked "
                                     f"{url} with a {timeout:g} s timeout): pass a working "
                                     f"--mirror URL"))

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1)  # name resolution is not covered by urlopen's timeout
    if not result:
        raise ImageError(f"mirror {mirror} does not answer within {timeout:g} s (checked "
                         f"{url}): pass a working --mirror URL")
    if result[0] is not None:
        raise result[0]


# ── building ──────────────────────────────────────────────────────────────────────────────
def debian_arch() -> str:
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    arch = host_arch()
    return _DPKG_ARCH.get(arch, arch)


def build(store: Store, name: str = "debian", *, suite: str = "bookworm",
          mirror: str | None = None, variant: str = "minbase", include: list[str] | None = None,
          cache_dir: str | None = None, replace: bool = False,
          in_use: Callable[[str], bool] | None = None, progress: Progress | None = None,
          mirror_timeout: float = 5.0) -> str:
    """debootstrap a Debian root into the store as image ``name``; return its directory."""
    progress = progress or Progress()
    check_name(name)
    include = [p for item in include or [] for p in item.split(",") if p]
    if store.exists(name) and not replace:
        raise ImageError(f"image {name!r} already exists (remove it with: jailer image rm "
                         f"{name}, or pass --replace)")
    if os.geteuid() != 0:
        raise ImageError("building a Debian image needs root (debootstrap creates device "
                         "nodes and chroots)")
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None)
    if not debootstrap:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
    if not _SUITE.match(suite) or not os.path.exists(os.path.join(SCRIPTS, suite)):
        raise ImageError(f"unknown suite {suite!r}: debootstrap knows the names in {SCRIPTS} "
                         f"(bookworm, trixie, sid, ...)")
    if variant not in VARIANTS:
        raise ImageError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")
    bad = [p for p in include if not _PACKAGE.match(p)]
    if bad:
        raise ImageError(f"--include: invalid package name {bad[0]!r}")
    mirror = (mirror or default_mirror(suite)).rstrip("/")
    progress.start(f"debootstrap {suite}: checking the mirror", None, unit="")
    check_mirror(mirror, suite, mirror_timeout)
    arch = debian_arch()
    cache_dir = os.path.abspath(cache_dir or os.path.join(CACHE_ROOT, f"{suite}-{arch}"))
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    staging = store.begin(name)
    try:
        rootfs = os.path.join(staging, "rootfs")
        cmd = ["unshare", "--mount", "--propagation", "private", "--", debootstrap,
               f"--arch={arch}", f"--cache-dir={cache_dir}"]
        if variant != "default":
            cmd.append(f"--variant={variant}")
        if include:
            cmd.append(f"--include={','.join(include)}")
        cmd += [suite, rootfs, mirror]
        _run(cmd, progress, suite, cache_dir)
        _tidy(rootfs, name)
        progress.done()
        meta = {"source": "debian", "suite": suite, "mirror": mirror, "variant": variant,
                "include": include, "architecture": arch, "cmd": ["/bin/bash"],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
        return store.commit(name, staging, meta, replace=replace, in_use=in_use)
    except BaseException:
        progress.done()
        store.abort(staging)
        raise


def _run(cmd: list[str], progress: Progress, suite: str, cache_dir: str) -> None:
    """Run debootstrap, showing its steps; ImageError with its last error line on failure."""
    progress.start(f"debootstrap {suite}", None, unit="")
    tail: list[str] = []
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", env=env,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-200:]
            if line.startswith("I: "):
                progress.note(line[3:])
                if line[3:].split(" ", 1)[0] in STEPS:
                    progress.advance(1)
        rc = proc.wait()
    except BaseException:
        _kill(proc)
        raise
    if rc != 0:
        log = os.path.join(os.path.dirname(cache_dir), f"{os.path.basename(cache_dir)}"
                                                       f".failed.log")
        try:
            with open(log, "w") as f:
                f.write("\n".join(tail) + "\n")
        except OSError:
            log = ""
        errors = [t for t in tail if t.startswith(("E:", "W: Failure"))] or tail or ["?"]
        raise ImageError(f"debootstrap failed (exit {rc}): {errors[-1][:300]}"
                         + (f" (its output is in {log})" if log else ""))


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    time.sleep(0.05)


def _tidy(rootfs: str, name: str) -> None:
    """Drop what debootstrap copied from the host or left behind for apt's cache."""
    for deb in glob.glob(os.path.join(rootfs, "var/cache/apt/archives/*.deb")):
        os.unlink(deb)
    resolv = os.path.join(rootfs, "etc/resolv.conf")
    if os.path.isfile(resolv) and not os.path.islink(resolv):
        os.unlink(resolv)
    for rel, text in (("etc/hostname", f"{name}\n"),
                      ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                                    "ip6-loopback\n")):
        path = os.path.join(rootfs, rel)
        if not os.path.islink(path):
            with open(path, "w") as f:
                f.write(text)
