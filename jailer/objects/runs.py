"""One-shot runs: ``jailer run ROOTFS CMD`` (Spec from the options table, one Launch, the
exit status) and its OCI form ``jailer run --bundle DIR ID`` (runc run)."""

from __future__ import annotations

import sys

from jailer.core import errors
from jailer.core.spec import Spec
from jailer.frontends.cliopts import check_privileges, to_spec


def report_resources(spec: Spec, result) -> None:
    """One line when the OOM killer struck (exit 137), and the --stats line."""
    st = result.stats
    if st is None or not (result.oom_killed or spec.stats):
        return
    from jailer.core.units import human_size

    limit = spec.limits.memory_max if spec.limits else None
    if result.oom_killed:
        sys.stderr.write(f"jailer: the container was killed by the OOM killer (memory limit "
                         f"{human_size(limit) if limit and limit > 0 else 'none'}, peak "
                         f"{human_size(st.memory_peak)}, {st.oom_kill} process(es) killed)\n")
    if spec.stats:
        cpu = (st.cpu_usage_usec or 0) / 1e6
        sys.stderr.write(f"jailer: stats: peak memory {human_size(st.memory_peak)}, "
                         f"cpu {cpu:.3f} s (user {(st.cpu_user_usec or 0) / 1e6:.3f} s, system "
                         f"{(st.cpu_system_usec or 0) / 1e6:.3f} s), OOM kills "
                         f"{st.oom_kill or 0}\n")


def run_cli(rootfs_arg: str, cmd: list[str], opts: dict) -> int:
    """``jailer run`` after parsing: build the Spec, start, wait, return the exit status."""
    if opts.get("bundle"):
        return _run_bundle(rootfs_arg, cmd, opts)
    try:
        spec = to_spec(rootfs_arg, cmd, opts)
        check_privileges(spec)
        from jailer.engine.launcher import Launch

        result = Launch(spec).run()
        report_resources(spec, result)
        return result.returncode
    except Exception as e:  # noqa: BLE001 - report() re-raises what is not a user error
        return errors.report(e, errors.RUN, stage="start")


def _run_bundle(cid: str, cmd: list[str], opts: dict) -> int:
    """``jailer run --bundle DIR ID``: runc run."""
    from jailer.objects import containers

    if cmd:
        errors.say("run --bundle: the command comes from config.json")
        return errors.EXIT_VERB
    try:
        return containers.run(cid, opts["bundle"], detach=bool(opts.get("detach")),
                              pid_file=opts.get("pid_file"),
                              console_socket=opts.get("console_socket"))
    except Exception as e:  # noqa: BLE001
        return errors.report(e, errors.OCI)
