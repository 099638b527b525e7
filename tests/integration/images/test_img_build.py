"""Building, importing (tarballs, directories), listing, exporting and removing images, and
running containers from them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import stat
import subprocess
import tarfile
import time

import pytest

from images import tree
from tests.support.imgtools import member, one_line_error, store_entries, write_tar

pytestmark = pytest.mark.root

META_KEYS = {"source", "created", "architecture", "size", "digest", "cmd", "env", "workdir",
             "user", "entrypoint", "readonly", "files"}


def inspect(jailer, name: str) -> dict:
    r = jailer("image", "inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_build_busybox_records_meta_and_rebuilds_identically(jailer, new_name, data_dir):
    name = new_name("bb")
    r = jailer("image", "build", "busybox", "--name", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(data_dir / "images" / name)
    meta = inspect(jailer, name)
    assert META_KEYS <= set(meta)
    assert meta["source"] == "busybox" and meta["readonly"] is True
    assert meta["digest"].startswith("sha256:") and meta["size"] > 500_000
    assert meta["cmd"] == ["/bin/sh"] and meta["users"] == {}
    assert meta["architecture"] == {"x86_64": "amd64", "aarch64": "arm64"}.get(
        os.uname().machine, os.uname().machine)
    listed = json.loads(jailer("image", "ls", "--json").stdout)
    assert name in [x["name"] for x in listed]
    assert name in jailer("image", "ls").stdout
    one_line_error(jailer("image", "build", "busybox", "--name", name), "already exists")
    r = jailer("image", "build", "busybox", "--name", name, "--replace")
    assert r.returncode == 0, r.stderr
    assert inspect(jailer, name)["digest"] == meta["digest"]
    assert jailer("image", "rm", name).returncode == 0
    assert name not in store_entries(data_dir)
    one_line_error(jailer("image", "inspect", name), "no image named")


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
def test_import_tarball_and_run_a_command(jailer, new_name, tmp_path, busybox_rootfs,
                                          compression):
    name = new_name("tar")
    suffix = {"": ".tar", "gz": ".tar.gz", "zst": ".tar.zst"}[compression]
    path = write_tar(tmp_path / f"root{suffix}",
                     [member("etc/motd", data=b"from the tarball\n")],
                     compression, rootfs=busybox_rootfs)
    r = jailer("image", "import", str(path), "--name", name)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # a clean archive: no warnings, no progress when piped
    meta = inspect(jailer, name)
    assert meta["source"] == "tar"
    assert meta["compression"] == {"": "tar", "gz": "gzip", "zst": "zstd"}[compression]
    assert meta["source_digest"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["architecture"] == inspect(jailer, "busybox")["architecture"]
    r = jailer("run", "--level", "container", name, "/bin/busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = jailer("run", "--level", "container", name, "/bin/cat", "/etc/motd")
    assert r.stdout == "from the tarball\n", r.stderr


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.zst"])
def test_export_then_import_keeps_the_digest(jailer, new_name, tmp_path, suffix):
    name = new_name("rt")
    out = tmp_path / f"busybox{suffix}"
    r = jailer("image", "export", "busybox", "-o", str(out))
    assert r.returncode == 0 and out.stat().st_size > 100_000, r.stderr
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    r = jailer("image", "import", str(out), "--name", name)
    assert r.returncode == 0, r.stderr
    assert inspect(jailer, name)["digest"] == inspect(jailer, "busybox")["digest"]


def test_export_to_stdout_is_a_tar(jailer_cmd, jenv):
    p = subprocess.run([jailer_cmd, "image", "export", "busybox", "-o", "-"], env=jenv,
                       capture_output=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as t:
        names = t.getnames()
    assert "bin/busybox" in names and "etc/passwd" in names


def _make_tree(src) -> None:
    """A directory with everything a rootfs copy must keep."""
    (src / "etc").mkdir()
    f = src / "etc" / "shadow"
    f.write_text("root:*:19000::::::\n")
    os.chown(f, 0, 42)
    os.chmod(f, 0o640)
    priv = src / "root"
    priv.mkdir()
    os.chmod(priv, 0o700)
    os.chown(priv, 1234, 5678)
    (src / "tmp").mkdir()
    os.chmod(src / "tmp", 0o1777)
    (src / "a").write_bytes(b"same inode\n")
    os.link(src / "a", src / "b")
    os.symlink("/etc/shadow", src / "abs-link")
    os.symlink("etc", src / "rel-link")
    sparse = src / "sparse"
    with open(sparse, "wb") as fh:
        fh.truncate(32 << 20)
        fh.seek(16 << 20)
        fh.write(b"middle")
    os.setxattr(src / "a", "user.jailer.test", b"xattr value")
    os.mkfifo(src / "fifo", 0o600)


def test_directory_import_keeps_owners_modes_links_xattrs_and_holes(jailer, new_name,
                                                                     tmp_path, data_dir):
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)
    name = new_name("dir")
    r = jailer("image", "import", str(src), "--name", name)
    assert r.returncode == 0, r.stderr
    root = data_dir / "images" / name / "rootfs"
    st = os.stat(root / "etc/shadow")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 42, 0o640)
    st = os.stat(root / "root")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o700)
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
    assert os.readlink(root / "abs-link") == "/etc/shadow"
    assert os.readlink(root / "rel-link") == "etc"
    assert os.getxattr(root / "a", "user.jailer.test") == b"xattr value"
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    sp = os.stat(root / "sparse")
    assert sp.st_size == 32 << 20 and sp.st_blocks * 512 < 1 << 20  # the holes stayed holes
    meta = inspect(jailer, name)
    assert meta["source"] == "dir"
    assert meta["digest"] == tree.summarize(str(src))["digest"]


def test_tarball_members_keep_owners_xattrs_hardlinks_and_sparse_files(jailer, new_name,
                                                                        tmp_path, data_dir):
    src = tmp_path / "src"
    src.mkdir()
    _make_tree(src)
    os.unlink(src / "fifo")
    archive = tmp_path / "gnu.tar"
    # GNU tar writes real sparse members and SCHILY xattrs
    subprocess.run(["tar", "--sparse", "--xattrs", "--xattrs-include=user.*", "--format=pax",
                    "--numeric-owner", "-C", str(src), "-cf", str(archive), "."], check=True)
    name = new_name("gnu")
    r = jailer("image", "import", str(archive), "--name", name)
    assert r.returncode == 0, r.stderr
    root = data_dir / "images" / name / "rootfs"
    sp = os.stat(root / "sparse")
    assert sp.st_size == 32 << 20 and sp.st_blocks * 512 < 1 << 20
    with open(root / "sparse", "rb") as fh:
        fh.seek(16 << 20)
        assert fh.read(6) == b"middle"
    assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
    assert os.getxattr(root / "a", "user.jailer.test") == b"xattr value"
    assert os.stat(root / "root").st_uid == 1234
    assert inspect(jailer, name)["digest"] == tree.summarize(str(src))["digest"]


def test_two_containers_from_one_image_see_only_their_own_writes(jailer, jailer_cmd, jenv,
                                                                  new_name, data_dir,
                                                                  busybox_rootfs):
    name = new_name("shared")
    assert jailer("image", "import", busybox_rootfs, "--name", name).returncode == 0
    before = inspect(jailer, name)["digest"]
    script = ('echo "$0" > /etc/who; mkdir -p /data; echo "$0" > /data/x; sleep 0.5; '
              'cat /etc/who /data/x')
    procs = [subprocess.Popen([jailer_cmd, "run", "--level", "container", name, "/bin/sh",
                               "-c", script, tag], env=jenv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for tag in ("first", "second")]
    outs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == "first\nfirst\n" and outs[1][0] == "second\nsecond\n"
    root = data_dir / "images" / name / "rootfs"
    assert not (root / "etc/who").exists() and not (root / "data").exists()
    assert tree.summarize(str(root))["digest"] == before


def test_progress_bar_only_on_a_terminal(jailer_cmd, jenv, new_name, tmp_path,
                                         busybox_rootfs):
    archive = write_tar(tmp_path / "r.tar", [], rootfs=busybox_rootfs)
    name = new_name("tty")
    main, sub = pty.openpty()
    try:
        p = subprocess.Popen([jailer_cmd, "image", "import", str(archive), "--name", name],
                             env=jenv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=sub)
        os.close(sub)
        sub = -1
        out, _ = p.communicate(timeout=30)
        seen = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert p.returncode == 0
        assert b"\r" in seen and b"import r.tar" in seen and b"%" in seen
    finally:
        os.close(main)
        if sub >= 0:
            os.close(sub)
