"""``jailer bench`` without root: input checks, the interleaving loop, ratios, rendering."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from jailer.bench import cli, report, runner
from jailer.bench.subjects import SUBJECTS, Cmd, Context, Oci, Subject, docker_to_oci
from jailer.bench.workloads import WORKLOADS, Workload, resolve_in_root
from tests.conftest import JAILER


def jailer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([JAILER, *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("args, word", [
    (("--subjects", "host,nope"), "unknown subject 'nope'"),
    (("--workloads", "cpu,warp"), "unknown workload 'warp'"),
    (("--subjects", ","), "give at least one subject"),
    (("--runs", "0"), "--runs 0"),
    (("--json", "--markdown"), "choose one"),
])
def test_bad_input_is_one_line_and_exit_2(args, word):
    r = jailer("bench", *args)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and lines[0].startswith("jailer: bench: ")
    assert "Traceback" not in r.stderr


def test_list_names_every_subject_and_workload():
    r = jailer("bench", "--list")
    assert r.returncode == 0
    for name in [*SUBJECTS, *WORKLOADS]:
        assert f"  {name} " in r.stdout


def test_jailer_run_path_does_not_import_the_benchmark():
    code = ("import sys; from jailer import main, api; from jailer.frontends import cliopts; "
            "from jailer.engine import launcher; "
            "import jailer.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('jailer.bench')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"  # jailer.cli registers the command; the package stays unloaded


def test_pick_keeps_order_and_drops_duplicates():
    assert cli.pick("crun,host,crun", SUBJECTS, "subject") == ["crun", "host"]
    assert cli.pick(None, WORKLOADS, "workload") == list(WORKLOADS)
    with pytest.raises(cli.Usage):
        cli.pick("a", SUBJECTS, "subject")


def test_resolve_in_root_follows_links_inside(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_text("")
    os.symlink("/bin/busybox", tmp_path / "bin" / "true")  # absolute: inside the root
    os.symlink("../bin", tmp_path / "sbin")
    root = str(tmp_path)
    assert resolve_in_root(root, "/bin/true") == f"{root}/bin/busybox"
    assert resolve_in_root(root, "/sbin/true") == f"{root}/bin/busybox"
    assert resolve_in_root(root, "/bin/false") is None
    os.symlink("loop", tmp_path / "loop")
    assert resolve_in_root(root, "/loop") is None


def test_workload_commands_are_inside_the_rootfs():
    assert WORKLOADS["start"].command(False) == ["/bin/true"]
    assert WORKLOADS["fileio"].command(True) == ["/bench", "fileio", "/io", "8"]
    assert WORKLOADS["net-rr"].command(True, target=("10.0.0.2", "5201"))[:4] == \
        ["/bench", "tcp-rr", "10.0.0.2", "5201"]
    host = SUBJECTS["host"]
    ctx = Context(top="/t", root="/t/root", env={})
    assert host.io_dir(ctx) == "/t/root/io" and SUBJECTS["jail"].io_dir(ctx) == "/io"


def test_a_missing_peer_is_a_note(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    ctx = Context(top="/t", root="/t/root", env={}, profile="/nonexistent.json")
    assert "runc not installed" in Oci("runc").missing(ctx)
    assert "not installed" in SUBJECTS["qemu-user"].missing(ctx)
    assert "bubblewrap" in SUBJECTS["bwrap"].missing(ctx)
    assert "/nonexistent.json missing" in SUBJECTS["container-docker"].missing(ctx)


def test_docker_profile_conversion_keeps_default_caps_only():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["s390_x"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "comment": "x"},
    ]}
    oci = docker_to_oci(profile)
    names = [n for rule in oci["syscalls"] for n in rule["names"]]
    assert names == ["getppid", "arch_prctl", "ptrace"]
    assert all(set(rule) <= {"names", "action", "args", "errnoRet"} for rule in oci["syscalls"])


class Shell(Subject):
    """A subject that runs sh -c SCRIPT and records the order of runs in a file."""

    kind = "host"

    def __init__(self, name: str, script: str, log: str) -> None:
        self.name, self.script, self.log = name, script, log

    def command(self, ctx, cmd, run):
        return Cmd(["sh", "-c", f"echo {self.name} >> {self.log}; {self.script}"])


def test_runs_are_interleaved_after_warmups_and_a_failure_drops_one_subject(tmp_path):
    log = str(tmp_path / "log")
    ctx = Context(top=str(tmp_path), root=str(tmp_path), env=dict(os.environ))
    w = Workload("cpu", "t", "ms", "lower", "cpu")
    subjects = [Shell("a", "echo 10", log), Shell("b", "echo 20", log),
                Shell("c", "echo boom >&2; exit 3", log)]
    res = runner.measure(ctx, w, subjects, runs=3, warmup=1,
                         progress=runner.Progress(12, enabled=False))
    order = open(log).read().split()
    assert order == ["a", "b", "c", "a", "b", "a", "b", "a", "b"]
    assert res["a"] == {"status": "ok", "median": 10.0, "min": 10.0, "max": 10.0, "n": 3,
                        "values": [10.0, 10.0, 10.0]}
    assert res["b"]["median"] == 20.0
    assert res["c"] == {"status": "failed", "note": "exit 3: boom"}


def test_unexpected_output_fails_the_subject(tmp_path):
    ctx = Context(top=str(tmp_path), root=str(tmp_path), env=dict(os.environ))
    w = Workload("cpu", "t", "ms", "lower", "cpu")
    res = runner.measure(ctx, w, [Shell("a", "echo hello", str(tmp_path / "log"))], 2, 0,
                         runner.Progress(2, enabled=False))
    assert res["a"]["status"] == "failed" and "hello" in res["a"]["note"]


def sample() -> dict:
    """Results as `jailer bench --json` writes them."""
    def ok(median: float) -> dict:
        return {"status": "ok", "median": median, "min": median * 0.9, "max": median * 1.2,
                "n": 3, "values": [median] * 3}

    return {
        "format": 1, "notes": ["a note"],
        "machine": {"cpu": "Test CPU", "cpus": 2, "kernel": "6.0", "arch": "x86_64",
                    "cgroups": "hybrid", "memory_mib": 1024, "load": "0.1 0.1 0.1",
                    "python": "3.11", "date": "2026-01-01T00:00:00+00:00"},
        "method": {"quick": True, "command": "jailer bench --quick", "image": "/img"},
        "subjects": {"host": {"kind": "host", "title": "h", "status": "ok"},
                     "container": {"kind": "jailer", "title": "c", "status": "ok"},
                     "runc": {"kind": "peer", "title": "r", "status": "ok"},
                     "crun": {"kind": "peer", "title": "c", "status": "skipped",
                              "note": "crun not installed"}},
        "workloads": {
            "start": {"name": "start", "title": "start", "unit": "ms", "better": "lower",
                      "note": "", "runs": 3, "warmup": 1, "args": "/bin/true",
                      "results": {"host": ok(1.0), "container": ok(20.0), "runc": ok(40.0)}},
            "membw": {"name": "membw", "title": "mem", "unit": "MB/s", "better": "higher",
                      "note": "", "runs": 3, "warmup": 1, "args": "/bench membw 16 2",
                      "results": {"host": ok(5000.0), "container": ok(4000.0),
                                  "runc": {"status": "failed", "note": "exit 1: x"}}},
            "density": {"name": "density", "title": "d", "unit": "", "better": "", "note": "",
                        "runs": 3, "warmup": 0, "args": "3 jails", "results": {
                            "container": {"status": "ok", "density": {
                                "jails": 3, "net": "loopback", "start_rate_per_s": 9.0,
                                "start_ms_median": 100.0, "start_ms_min": 90.0,
                                "start_ms_max": 120.0, "start_rate_one_command_per_s": 12.0,
                                "stop_rate_one_command_per_s": 30.0,
                                "monitor_pss_kib_per_jail": 270.0,
                                "monitor_private_dirty_kib_per_jail": 60.0,
                                "memavailable_drop_kib_per_jail": 900.0,
                                "workload_cgroup_kib_per_jail": 100.0,
                                "host_beyond_workload_kib_per_jail": 800.0}}}},
        },
    }


def test_ratios_point_the_same_way_for_every_unit():
    data = sample()
    report.add_ratios(data)
    start = data["workloads"]["start"]["results"]
    assert start["container"]["x_host"] == 20.0 and start["container"]["speed"] == 5.0
    assert start["container"]["x_runc"] == 0.5 and start["container"]["x_crun"] is None
    mem = data["workloads"]["membw"]["results"]
    assert mem["container"]["x_host"] == 0.8 and mem["container"]["speed"] == 80.0
    assert "x_runc" not in mem["container"]
    assert report.failed(data) == ["membw/runc: exit 1: x"]


def test_table_markdown_and_json_render():
    data = sample()
    report.add_ratios(data)
    table = report.table(data)
    assert "Test CPU" in table and "cgroups hybrid" in table
    assert "summary: speed in % of the host's" in table
    assert "note: a note" in table and "monitor Pss 270.0 KiB" in table
    md = report.markdown(data)
    assert "| container | 20.00 | 18.00 | 24.00 | 20.00 | - | 5.0 | 0.50 | - |" in md
    assert "**skipped**: crun not installed" in md
    assert json.loads(report.to_json(data)) == data


def test_from_json_reports_saved_results(tmp_path):
    data = sample()
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    r = jailer("bench", "--from-json", str(path), "--markdown")
    assert r.returncode == 0, r.stderr
    assert "### Summary" in r.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = jailer("bench", "--from-json", str(bad))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_plot_from_saved_results(tmp_path):
    pytest.importorskip("matplotlib")
    from jailer.bench import plot

    data = sample()
    report.add_ratios(data)
    plot.plot(data, str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler")
def test_the_workload_program_builds_and_answers(tmp_path):
    from jailer.bench.workloads import build_program

    prog = str(tmp_path / "bench")
    build_program(prog)
    for args in (["cpu", "2"], ["alu", "1000"], ["syscall", "1000"], ["membw", "1", "1"],
                 ["fileio", str(tmp_path), "1"], ["files", str(tmp_path), "10"],
                 ["tcp-stream", "self", "0", "1"], ["tcp-rr", "self", "0", "10"]):
        out = subprocess.run([prog, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (args, out.stderr)
        assert float(out.stdout.split()[-1]) > 0, args
    assert subprocess.run([prog, "true"]).returncode == 0
    bad = subprocess.run([prog, "cpu", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and "positive number" in bad.stderr
    assert os.listdir(tmp_path) == ["bench"]


def test_run_once_waits_without_polling_and_stops_at_the_timeout(monkeypatch):
    """The run's own status comes back; one that outlives TIMEOUT is stopped (SIGTERM) and
    reported as 124 with the reason, and no timer is left behind."""
    import os
    import signal
    import types

    from jailer.bench import runner

    ctx = types.SimpleNamespace(env=dict(os.environ))
    _, code, out, _ = runner.run_once(ctx, ["sh", "-c", "echo hi; exit 3"], None, True)
    assert (code, out) == (3, "hi\n")
    monkeypatch.setattr(runner, "TIMEOUT", 0.2)
    elapsed, code, _, err = runner.run_once(ctx, ["sleep", "30"], None, False)
    assert code == 124 and "timed out" in err
    assert elapsed < 30  # it was stopped, not waited for
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None, signal.default_int_handler)
