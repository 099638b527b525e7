"""OCI image layouts and docker-save archives written by the tests: layers applied in order
with whiteouts and opaque directories, the config's defaults in meta.json, digests checked."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from tests.support.imgtools import (
    member,
    one_line_error,
    store_entries,
    tar_bytes,
    tree,
    write_docker_save,
    write_oci,
)

pytestmark = pytest.mark.root

CONFIG = {"config": {"Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
                     "Cmd": ["/bin/sh", "-c", "echo $GREETING"], "WorkingDir": "/srv",
                     "User": "1000:1000", "Entrypoint": ["/bin/busybox"]}}


def two_layers(busybox_rootfs: str) -> list[bytes]:
    base = tar_bytes([
        member("etc/removed", data=b"lower\n"),
        member("opaque", "dir"),
        member("opaque/old", data=b"lower\n"),
        member("opaque/sub", "dir"),
        member("opaque/sub/old2", data=b"lower\n"),
        member("keep", "dir"),
        member("keep/a", data=b"a\n"),
        member("gone-dir", "dir"),
        member("gone-dir/x", data=b"x\n"),
        member("srv", "dir"),
    ], rootfs=busybox_rootfs)
    top = tar_bytes([
        member("etc/.wh.removed"),
        member("opaque", "dir"),
        member("opaque/new", data=b"upper\n"),  # written before the marker: must survive
        member("opaque/.wh..wh..opq"),
        member("keep/b", data=b"b\n"),
        member(".wh.gone-dir"),
        member("etc/added", data=b"from layer 2\n"),
        member("srv/index.html", data=b"served\n"),
    ])
    return [base, top]


def check_merged(root) -> None:
    t = tree(root)
    assert "etc/removed" not in t and "gone-dir" not in t
    assert sorted(k for k in t if k.startswith("opaque/")) == ["opaque/new"]
    assert (root / "opaque/new").read_text() == "upper\n"
    assert sorted(k for k in t if k.startswith("keep/")) == ["keep/a", "keep/b"]
    assert (root / "etc/added").read_text() == "from layer 2\n"
    assert not [k for k in t if ".wh." in k]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_oci_layout_directory(jailer, new_name, tmp_path, data_dir, busybox_rootfs,
                              compression):
    layout = tmp_path / "layout"
    digest = write_oci(layout, two_layers(busybox_rootfs), CONFIG, ref="v1",
                       compression=compression)
    name = new_name("oci")
    r = jailer("image", "import", str(layout), "--name", name)
    assert r.returncode == 0, r.stderr
    check_merged(data_dir / "images" / name / "rootfs")
    meta = json.loads(jailer("image", "inspect", name).stdout)
    assert meta["source"] == "oci" and meta["source_digest"] == digest and meta["ref"] == "v1"
    assert meta["env"] == CONFIG["config"]["Env"]
    assert meta["cmd"] == CONFIG["config"]["Cmd"]
    assert meta["entrypoint"] == ["/bin/busybox"]
    assert (meta["workdir"], meta["user"], meta["layers"]) == ("/srv", "1000:1000", 2)
    r = jailer("run", "--level", "container", name, "/bin/cat", "/etc/added",
               "/srv/index.html")
    assert (r.returncode, r.stdout) == (0, "from layer 2\nserved\n"), r.stderr


def test_oci_layout_archive_uncompressed_layers_and_ref(jailer, new_name, tmp_path, data_dir,
                                                        busybox_rootfs):
    layout = tmp_path / "layout"
    write_oci(layout, two_layers(busybox_rootfs), CONFIG, compression="")
    archive = tmp_path / "image.oci.tar"
    with tarfile.open(archive, "w") as t:
        t.add(layout, arcname=".")
    name = new_name("ocia")
    one_line_error(jailer("image", "import", str(archive), "--name", name, "--ref", "nope"),
                   "no image 'nope'", "latest")
    assert name not in store_entries(data_dir)
    r = jailer("image", "import", str(archive), "--name", name, "--ref", "latest")
    assert r.returncode == 0, r.stderr
    check_merged(data_dir / "images" / name / "rootfs")


def test_docker_save_archive(jailer, new_name, tmp_path, data_dir, busybox_rootfs):
    archive = write_docker_save(tmp_path / "saved.tar", two_layers(busybox_rootfs), CONFIG)
    name = new_name("docker")
    r = jailer("image", "import", str(archive), "--name", name)
    assert r.returncode == 0, r.stderr
    check_merged(data_dir / "images" / name / "rootfs")
    meta = json.loads(jailer("image", "inspect", name).stdout)
    assert meta["source"] == "docker" and meta["ref"] == "test/image:latest"
    assert meta["cmd"] == CONFIG["config"]["Cmd"] and meta["workdir"] == "/srv"
    r = jailer("run", "--level", "container", name, "/bin/busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr


def test_tampered_layer_is_refused(jailer, new_name, tmp_path, data_dir, busybox_rootfs):
    layout = tmp_path / "layout"
    write_oci(layout, two_layers(busybox_rootfs), CONFIG)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / index["manifests"][0]["digest"].replace(
        ":", "/")).read_text())
    victim = layout / "blobs" / manifest["layers"][1]["digest"].replace(":", "/")
    import gzip

    victim.write_bytes(gzip.compress(tar_bytes([member("etc/added", data=b"evil\n")])))
    name = new_name("bad")
    one_line_error(jailer("image", "import", str(layout), "--name", name),
                   "does not match its digest")
    assert name not in store_entries(data_dir)


def test_docker_layer_paths_cannot_escape(jailer, new_name, tmp_path, data_dir,
                                          busybox_rootfs):
    archive = write_docker_save(tmp_path / "evil.tar", [tar_bytes([member("x")])], CONFIG,
                                layer_paths=["../../etc/passwd"])
    name = new_name("esc")
    one_line_error(jailer("image", "import", str(archive), "--name", name), "invalid path")
    assert name not in store_entries(data_dir)


@pytest.mark.skipif(not shutil.which("umoci"), reason="umoci is not installed")
def test_layout_made_by_umoci(jailer, new_name, tmp_path, data_dir, busybox_rootfs):
    """Interoperability: a layout written by umoci (Debian's package) imports the same."""
    import subprocess

    layout = tmp_path / "umoci"
    run = [lambda *a: subprocess.run(["umoci", *a], check=True, capture_output=True)][0]
    run("init", "--layout", str(layout))
    run("new", "--image", f"{layout}:t")
    bundle = tmp_path / "bundle"
    run("unpack", "--image", f"{layout}:t", str(bundle))
    shutil.rmtree(bundle / "rootfs")
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
    (bundle / "rootfs" / "etc" / "umoci").write_text("made by umoci\n")
    run("repack", "--image", f"{layout}:t", str(bundle))
    run("config", "--image", f"{layout}:t", "--config.cmd", "/bin/true",
        "--config.env", "FOO=bar")
    name = new_name("umoci")
    r = jailer("image", "import", str(layout), "--name", name, "--ref", "t")
    assert r.returncode == 0, r.stderr
    meta = json.loads(jailer("image", "inspect", name).stdout)
    assert meta["cmd"] == ["/bin/true"] and "FOO=bar" in meta["env"]
    r = jailer("run", "--level", "container", name, "/bin/cat", "/etc/umoci")
    assert r.stdout == "made by umoci\n", r.stderr
