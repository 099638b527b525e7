"""Bad input to ``jailer image``: one clear line on stderr, a non-zero exit, and nothing left
in the store (no image, no staging directory)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from tests.support.imgtools import member, one_line_error, store_entries, write_tar

pytestmark = pytest.mark.root


@pytest.fixture
def store_unchanged(data_dir):
    before = store_entries(data_dir)
    yield
    assert store_entries(data_dir) == before


def test_unknown_source(jailer, store_unchanged):
    one_line_error(jailer("image", "build", "gentoo"), "unknown image source 'gentoo'",
                   "busybox or debian")


def test_missing_file(jailer, store_unchanged, new_name):
    one_line_error(jailer("image", "import", "/no/such/file.tar", "--name", new_name()),
                   "/no/such/file.tar", "no such file")


def test_unreadable_file(jailer_cmd, jenv, tmp_path, store_unchanged, new_name):
    path = write_tar(tmp_path / "secret.tar", [member("a")])
    os.chown(path, 12345, 12345)
    os.chmod(path, 0)
    # root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: like any user who may not read it
    r = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", jailer_cmd,
                        "image", "import", str(path), "--name", new_name()], env=jenv,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    one_line_error(r, "cannot read", "permission denied")


@pytest.mark.parametrize("content,needle", [
    (b"", "is empty"),
    (b"this is not an archive\n" * 100, "is not a tar archive"),
])
def test_not_an_archive(jailer, tmp_path, store_unchanged, new_name, content, needle):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(content)
    one_line_error(jailer("image", "import", str(path), "--name", new_name()), needle)


def test_format_mismatch(jailer, tmp_path, store_unchanged, new_name):
    path = write_tar(tmp_path / "a.tar", [member("a")])
    one_line_error(jailer("image", "import", str(path), "--name", new_name(), "--format",
                          "dir"), "is not a directory")
    one_line_error(jailer("image", "import", str(tmp_path), "--name", new_name(), "--format",
                          "oci"), "not an OCI image layout")


def test_taken_name(jailer, tmp_path, data_dir, store_unchanged):
    path = write_tar(tmp_path / "a.tar", [member("a")])
    before = json.loads(jailer("image", "inspect", "busybox").stdout)["digest"]
    one_line_error(jailer("image", "import", str(path), "--name", "busybox"),
                   "'busybox' already exists")
    assert json.loads(jailer("image", "inspect", "busybox").stdout)["digest"] == before


@pytest.mark.parametrize("name", ["Upper", "../evil", "-dash", ".hidden", "a/b", "x" * 65, ""])
def test_invalid_names(jailer, tmp_path, store_unchanged, name):
    path = write_tar(tmp_path / "a.tar", [member("a")])
    one_line_error(jailer("image", "import", str(path), "--name", name), "invalid image name")
    one_line_error(jailer("image", "build", "busybox", "--name", name), "invalid image name")


def test_mirror_that_refuses_connections(jailer, store_unchanged, new_name):
    t0 = time.monotonic()
    r = jailer("image", "build", "debian", "--mirror", "http://127.0.0.1:9/", "--name",
               new_name())
    one_line_error(r, "mirror http://127.0.0.1:9", "does not answer", "--mirror")
    assert time.monotonic() - t0 < 10


def test_mirror_that_never_answers(jailer, store_unchanged, new_name):
    """A listener that accepts nothing: the check gives up after --mirror-timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        r = jailer("image", "build", "debian", "--mirror", f"http://127.0.0.1:{port}/debian",
                   "--mirror-timeout", "1", "--name", new_name())
        elapsed = time.monotonic() - t0
    one_line_error(r, "does not answer", "1 s")
    assert elapsed < 5


def test_unknown_suite(jailer, store_unchanged, new_name):
    one_line_error(jailer("image", "build", "debian", "--suite", "nosuchsuite", "--name",
                          new_name()), "unknown suite 'nosuchsuite'")


def test_unknown_image_for_pack_export_rm_inspect(jailer, tmp_path, store_unchanged):
    for args in (["pack", "nosuch", "--format", "squashfs"],
                 ["export", "nosuch", "-o", str(tmp_path / "x.tar")], ["rm", "nosuch"],
                 ["inspect", "nosuch"]):
        one_line_error(jailer("image", *args), "no image named 'nosuch'")
    assert not (tmp_path / "x.tar").exists()


def test_export_to_a_missing_directory(jailer, store_unchanged):
    one_line_error(jailer("image", "export", "busybox", "-o", "/no/such/dir/x.tar"),
                   "cannot write")


def test_bad_max_size(jailer, tmp_path, store_unchanged, new_name):
    path = write_tar(tmp_path / "a.tar", [member("a")])
    one_line_error(jailer("image", "import", str(path), "--name", new_name(), "--max-size",
                          "lots"), "--max-size")


def test_rm_refuses_an_image_in_use(jailer, tmp_path, data_dir, new_name):
    name = new_name("used")
    path = write_tar(tmp_path / "a.tar", [member("a")])
    assert jailer("image", "import", str(path), "--name", name).returncode == 0
    users = data_dir / "images" / name / "users"
    users.mkdir()
    (users / "c0ffee").write_text("root\n")
    one_line_error(jailer("image", "rm", name), "in use", "c0ffee (root)")
    one_line_error(jailer("image", "import", str(path), "--name", name, "--replace"),
                   "in use")
    assert json.loads(jailer("image", "inspect", name).stdout)["users"] == {"c0ffee": "root"}
    (users / "c0ffee").unlink()
    r = jailer("image", "rm", name)
    assert r.returncode == 0, r.stderr
    assert name not in store_entries(data_dir)


def test_killed_build_leaves_nothing_once_the_next_build_runs(jailer, data_dir, tmp_path,
                                                              new_name):
    stale = data_dir / "images" / ".ghost.building.999999999"
    (stale / "rootfs").mkdir(parents=True)
    name = new_name()
    path = write_tar(tmp_path / "a.tar", [member("a")])
    assert jailer("image", "import", str(path), "--name", name).returncode == 0
    assert not stale.exists()
    assert not [e for e in store_entries(data_dir) if e.startswith(".")]
