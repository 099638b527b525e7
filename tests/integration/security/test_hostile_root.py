"""Hole 4 of the security review: host-side work inside a hostile rootfs followed symlinks the
image controls. A root whose ``dev``, ``proc``, ``sys`` or ``etc/passwd`` points out of the
root (to a host directory holding a marker) or is a FIFO must neither change the host nor hang
the start: kernel filesystems mount only on real directories, /dev nodes and links are made
relative to the fd of the runtime's own tmpfs, /etc/passwd is read by one in-root reader.

Each attack has a control: the same symlinked path resolved naively from the host (what the
path-based code did) really reaches the host directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import JAILER

pytestmark = pytest.mark.root


@pytest.fixture
def hostile(rootfs):
    """(root, host): a private copy of the busybox root below a 0700 dir (an in-place jail
    root must be), and a host directory with a marker that the root's symlinks point at."""
    top = Path(tempfile.mkdtemp(prefix="jltest-hostile-", dir="/tmp"))
    os.chmod(top, 0o700)
    shutil.copytree(rootfs, top / "root", symlinks=True)
    host = Path(tempfile.mkdtemp(prefix="jltest-hosttarget-", dir="/tmp"))
    (host / "marker").write_text("host\n")
    yield top / "root", host
    shutil.rmtree(top)
    shutil.rmtree(host)


def _snapshot(d: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(d.rglob("*")):
        st = os.lstat(p)
        out[str(p.relative_to(d))] = (st.st_mode, st.st_rdev, st.st_size)
    return out


def _run(root: Path, *args: str, level: str = "jail") -> subprocess.CompletedProcess:
    return subprocess.run([JAILER, "run", "--level", level, *args, str(root), "/bin/sh", "-c",
                           "echo ran"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def _one_line(r: subprocess.CompletedProcess) -> str:
    err = r.stderr.strip()
    assert r.returncode != 0 and "ran" not in r.stdout, (r.stdout, r.stderr)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _plant(root: Path, name: str, target: Path) -> None:
    p = root / name
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
    p.symlink_to(target)


@pytest.mark.parametrize("name,word", [("dev", "dev"), ("proc", "proc"), ("sys", "sys")])
def test_kernel_dirs_that_are_symlinks_out_of_the_root_are_refused(hostile, name, word):
    root, host = hostile
    _plant(root, name, host)
    before = _snapshot(host)
    err = _one_line(_run(root))
    assert f"{word} must be mounted on an ordinary directory" in err, err
    assert _snapshot(host) == before  # no node, link, mount point or mount on the host
    # control: resolved naively from the host, the root's path really is the host dir
    assert os.path.realpath(root / name) == str(host)
    probe = root / name / "probe"
    probe.write_text("x")  # what a plain os.mknod(root + "/dev/null") did: on the host
    assert (host / "probe").exists()


def test_dev_pts_symlink_is_contained(hostile):
    """/dev is the runtime's own tmpfs, so an image's dev/pts never matters; the start works
    and the host directory is untouched."""
    root, host = hostile
    (root / "dev").mkdir(exist_ok=True)
    _plant(root, "dev/pts", host)
    before = _snapshot(host)
    r = _run(root)
    assert r.returncode == 0 and "ran" in r.stdout, r.stderr
    assert _snapshot(host) == before
    assert os.path.realpath(root / "dev" / "pts") == str(host)  # control: the link is live


def test_a_relative_dotdot_symlink_is_refused_too(hostile):
    root, host = hostile
    rel = os.path.relpath(host, root)  # ../../jltest-hosttarget-...: climbs out naively
    _plant(root, "proc", Path(rel))
    before = _snapshot(host)
    err = _one_line(_run(root))
    assert "proc must be mounted on an ordinary directory" in err
    assert _snapshot(host) == before
    assert os.path.realpath(root / "proc") == str(host)  # control


def test_passwd_symlink_out_of_the_root_is_not_read(hostile):
    root, host = hostile
    (host / "passwd").write_text("evil:x:4242:4242::/evil:/bin/sh\n")
    _plant(root, "etc/passwd", host / "passwd")
    err = _one_line(_run(root, "--user", "evil"))
    assert "no user 'evil'" in err, err
    # control: a naive open of the image's /etc/passwd reads the host's file
    assert "evil:x:4242" in (root / "etc" / "passwd").read_text()


def test_passwd_fifo_does_not_hang_the_start(hostile):
    root, _host = hostile
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")
    err = _one_line(_run(root, "--user", "evil"))  # subprocess timeout=60 would raise
    assert "no user 'evil'" in err
    # control: a plain blocking open of that FIFO really hangs (it is given 1 s)
    r = subprocess.run(["timeout", "1", "cat", str(root / "etc" / "passwd")],
                       capture_output=True)
    assert r.returncode == 124


def test_mask_and_sysctl_targets_refuse_symlinks(tmp_path):
    """The Mounter itself, in a throw-away mount namespace: a masked path that is a symlink
    to a host file is refused (the host file stays visible where it is, unmasked by us, and
    nothing is mounted over it); a sysctl outside a procfs is refused. Control: a naive
    bind of /dev/null over the same path (what the path-based code did) lands on the host."""
    root = tmp_path / "r"
    (root / "dev").mkdir(parents=True)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("secret\n")
    (root / "masked").symlink_to(host / "secret")
    os.mknod(root / "dev" / "null", 0o20666, os.makedev(1, 3))
    (root / "fakenull").write_text("")
    script = f"""
import os, sys
sys.path.insert(0, {os.getcwd()!r})
from jailer.kernel import syscalls as S
from jailer.engine.mounts import Mounter
from jailer.core.errors import JailerError
from jailer.core.plan import Mask, Sysctl
m = Mounter(S.Syscalls(), {str(root)!r})
for name, op in (("mask", Mask("/masked")), ("sysctl", Sysctl("kernel.hostname", "x"))):
    try:
        m.apply([op]); print(name, "applied")
    except JailerError as e:
        print(name, "refused:", e)
os.unlink({str(root / "dev" / "null")!r}); os.symlink("/fakenull", {str(root / "dev" / "null")!r})
os.unlink({str(root / "masked")!r}); open({str(root / "masked")!r}, "w").close()
try:
    m.apply([Mask("/masked")]); print("fake null applied")
except JailerError as e:
    print("fake null refused:", e)
S.Syscalls().mount("/dev/null", {str(host / "secret")!r}, None, S.MS_BIND)
print("naive:", open({str(host / "secret")!r}).read() == "")
"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private",
                        os.path.realpath(".venv/bin/python"), "-c", script],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout
    assert "mask refused: mount: masked path /masked: a symlink" in out, (out, r.stderr)
    assert "sysctl refused" in out, out
    assert "fake null refused" in out and "not the character device 1:3" in out, out
    assert (host / "secret").read_text() == "secret\n"  # never covered in our namespace
    assert "naive: True" in out, (out, r.stderr)  # control: naive resolution reaches the host


# ── the same attacks at container level (overlay root) and in OCI mode ────────────────────
@pytest.mark.parametrize("name,word", [("dev", "dev"), ("proc", "proc"), ("sys", "sys")])
def test_container_level_kernel_dir_symlinks_are_refused(hostile, name, word):
    """At --level container the image is the overlay's lower layer: its symlinks show in the
    merged root all the same, and are refused the same way."""
    root, host = hostile
    _plant(root, name, host)
    before = _snapshot(host)
    err = _one_line(_run(root, level="container"))
    assert f"{word} must be mounted on an ordinary directory" in err, err
    assert _snapshot(host) == before
    assert os.path.realpath(root / name) == str(host)  # control: the link is live


def test_chroot_level_runs_the_same_root(hostile):
    """Control: the refusal at jail/container level comes from the mount check, not from a
    broken image: at --level chroot (no jailer mounts) the same hostile root starts."""
    root, host = hostile
    _plant(root, "proc", host)
    r = _run(root, level="chroot")
    assert r.returncode == 0 and "ran" in r.stdout, (r.stdout, r.stderr)


def _oci_bundle(tmp_path: Path, rootfs: Path) -> Path:
    import json
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copytree(rootfs, b / "rootfs", symlinks=True)
    r = subprocess.run([JAILER, "spec", "--bundle", str(b)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/sh", "-c", "echo ran"]
    (b / "config.json").write_text(json.dumps(cfg))
    return b


@pytest.mark.parametrize("name,word", [("proc", "proc"), ("sys", "sys"), ("dev", "dev")])
def test_oci_kernel_dir_symlinks_are_refused(tmp_path, rootfs, oci, hostile, name, word):
    """An OCI bundle whose rootfs has proc/sys/dev pointing at a host dir: `run` fails with
    one line, the host dir is unchanged, no state is left (the oci fixture checks)."""
    _root, host = hostile
    b = _oci_bundle(tmp_path, rootfs)
    _plant(b / "rootfs", name, host)
    before = _snapshot(host)
    r = oci("run", "--bundle", str(b), f"hostile-{name}")
    err = r.stderr.strip()
    assert r.returncode != 0 and "ran" not in r.stdout, (r.stdout, r.stderr)
    assert "Traceback" not in err and f"{word} must be mounted on an ordinary directory" \
        in err, err
    assert _snapshot(host) == before
    assert os.path.realpath(b / "rootfs" / name) == str(host)  # control


def test_oci_masked_path_symlink_is_refused(tmp_path, rootfs, oci, hostile):
    """A config's masked path that the image made a symlink to a host file: refused, nothing
    mounted over the host file. Control: the same bundle without the mask runs, and the
    image's path reaches the host file from inside (the link is live)."""
    import json
    _root, host = hostile
    b = _oci_bundle(tmp_path, rootfs)
    (b / "rootfs" / "secret").symlink_to(host / "marker")
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["maskedPaths"] = [*cfg["linux"].get("maskedPaths", []), "/secret"]
    (b / "config.json").write_text(json.dumps(cfg))
    r = oci("run", "--bundle", str(b), "hostile-mask")
    assert r.returncode != 0 and "ran" not in r.stdout, (r.stdout, r.stderr)
    assert "masked path /secret: a symlink" in r.stderr and "Traceback" not in r.stderr, \
        r.stderr
    assert (host / "marker").read_text() == "host\n"
    assert os.path.realpath(b / "rootfs" / "secret") == str(host / "marker")  # control


def test_ptmx_that_is_not_the_multiplexer_is_refused(tmp_path):
    """Where a joined process (exec -t) opens the container's /dev/pts/ptmx: a FIFO or a file
    there is refused promptly, a symlink is not followed; the real devpts ptmx is taken.
    Control: a naive open of the FIFO succeeds (O_RDWR), so the old code took it as the
    master."""
    from jailer.core.errors import JailerError
    from jailer.engine.launcher import open_ptmx

    fifo = tmp_path / "ptmx"
    os.mkfifo(fifo)
    with pytest.raises(JailerError, match="not the pty multiplexer"):
        open_ptmx(str(fifo))
    (tmp_path / "link").symlink_to("/dev/pts/ptmx")
    with pytest.raises(OSError) as e:
        open_ptmx(str(tmp_path / "link"))
    assert e.value.errno == 40  # ELOOP
    os.close(open_ptmx("/dev/pts/ptmx"))
    fd = os.open(fifo, os.O_RDWR | os.O_NOCTTY)  # control
    os.close(fd)


def test_oci_exec_tty_still_gets_the_devpts_ptmx(tmp_path, rootfs, oci, oci_root):
    """The checked ptmx open is the one exec -t uses: it works on a real container."""
    import json
    b = _oci_bundle(tmp_path, rootfs)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["args"] = ["sleep", "30"]
    (b / "config.json").write_text(json.dumps(cfg))
    oci("run", "--detach", "--bundle", str(b), "ptx", check=True)
    cmd = f"{JAILER} --root {oci_root} exec -t ptx /bin/sh -c 'tty; echo ok'"
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "/dev/pts/" in r.stdout and "ok" in r.stdout, \
        (r.stdout, r.stderr)


def test_container_level_passwd_fifo_does_not_hang(hostile):
    root, _host = hostile
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")
    err = _one_line(_run(root, "--user", "evil", level="container"))
    assert "no user 'evil'" in err


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_oci_passwd_for_home_is_read_in_the_root(tmp_path, rootfs, oci, hostile, kind):
    """OCI mode reads the image's /etc/passwd for HOME (as runc): a FIFO there does not hang
    `run`, a symlink to a host passwd is not followed out of the root (HOME is not the host
    file's). Controls: a naive blocking open of the FIFO hangs; the link, resolved from the
    host, reaches the host file."""
    _root, host = hostile
    b = _oci_bundle(tmp_path, rootfs)
    pw = b / "rootfs" / "etc" / "passwd"
    pw.unlink()
    if kind == "fifo":
        os.mkfifo(pw)
    else:
        (host / "passwd").write_text("root:x:0:0::/evil-home:/bin/sh\n")
        pw.symlink_to(host / "passwd")
    import json
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["env"] = [e for e in cfg["process"]["env"] if not e.startswith("HOME=")]
    cfg["process"]["args"] = ["/bin/sh", "-c", "echo home=$HOME"]
    (b / "config.json").write_text(json.dumps(cfg))
    r = oci("run", "--bundle", str(b), f"pw-{kind}")  # the fixture's timeout=60 would raise
    assert r.returncode == 0 and "home=/\n" in r.stdout, (r.stdout, r.stderr)
    if kind == "fifo":
        c = subprocess.run(["timeout", "1", "cat", str(pw)], capture_output=True)
        assert c.returncode == 124  # control: a plain open blocks
    else:
        assert "/evil-home" in pw.read_text()  # control: naive resolution reaches the host


def test_oci_sysctl_only_into_procfs(tmp_path, rootfs, oci):
    """A config with no proc mount and a sysctl: the image's plain /proc/sys/kernel/... file
    is not written (it is no procfs: fstatfs f_type checked). Control: the old check (same
    device as the root's /proc) accepted that file."""
    import json
    b = _oci_bundle(tmp_path, rootfs)
    cfg = json.loads((b / "config.json").read_text())
    cfg["mounts"] = [m for m in cfg["mounts"] if m.get("type") != "proc"]
    cfg["linux"]["sysctl"] = {"kernel.domainname": "evil"}
    cfg["root"]["readonly"] = False  # else the open fails on the read-only root already
    (b / "config.json").write_text(json.dumps(cfg))
    fake = b / "rootfs" / "proc" / "sys" / "kernel" / "domainname"
    fake.parent.mkdir(parents=True)
    fake.write_text("image\n")
    r = oci("run", "--bundle", str(b), "sysctl-noproc")
    err = r.stderr.strip()
    assert r.returncode != 0 and "ran" not in r.stdout, (r.stdout, r.stderr)
    assert "is not a file of the container's procfs" in err and len(err.splitlines()) == 1, err
    assert fake.read_text() == "image\n"
    assert os.stat(fake).st_dev == os.stat(b / "rootfs" / "proc").st_dev  # control


@pytest.mark.parametrize("level", ["jail", "container"])
@pytest.mark.parametrize("name", ["dev", "proc", "sys"])
def test_kernel_dirs_that_are_fifos_are_refused(hostile, name, level):
    """A FIFO where a kernel filesystem goes: refused promptly with one line (not mounted
    over, not opened). Control: at --level chroot (no jailer mounts) the root starts."""
    root, _host = hostile
    p = root / name
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    os.mkfifo(p)
    err = _one_line(_run(root, level=level))
    assert f"{name} must be mounted on an ordinary directory" in err, err
    r = _run(root, level="chroot")
    assert r.returncode == 0 and "ran" in r.stdout, (r.stdout, r.stderr)
