"""Console entry point. ``jailer run`` and ``jailer start NAME...`` take a fast path that never
imports click and exits without tearing the interpreter down."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "run":
        from jailer.frontends import cliopts

        parsed = cliopts.fast_parse(args[1:])
        if parsed is not None:
            from jailer.objects import runs

            exit_now(runs.run_cli(*parsed))
    if args[:1] == ["start"] and len(args) > 1 and not any(a.startswith("-") for a in args):
        code = _start(args[1:])  # the hot verb of a jail host: no click
        if code >= 0:
            exit_now(code)
    if args[:1] == ["_cleanup"] and len(args) == 2:  # exec'd by the monitor: no click
        from jailer.objects import lifecycle

        lifecycle.cleanup_after_exit(args[1])
        exit_now(0)
    import click

    from jailer.cli import cli

    try:
        cli.main(args=args, prog_name="jailer", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:  # usage errors: one line, like every other error
        ctx = getattr(e, "ctx", None)
        hint = f" (try '{ctx.command_path} --help')" if ctx else ""
        from jailer.core.errors import log_line

        log_line("error", e.format_message())
        sys.stderr.write(f"jailer: {e.format_message()}{hint}\n")
        sys.exit(e.exit_code)
    except click.Abort:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a verb's failure that no guard() caught
        from jailer.core import errors

        sys.exit(errors.report(e, errors.VERB))


def exit_now(code: int) -> None:  # never returns (typing.NoReturn: typing is not imported)
    """Exit with ``code`` at once. Python's own exit frees every module, class and function
    one by one (about a sixth of a jail run's instructions); a fast path has nothing left for
    it to do: its files are closed and only stdout and stderr may hold buffered output."""
    import os

    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # e.g. a closed pipe: Python's exit says 120 too
        code = code or 120
    os._exit(code)


def _start(names: list[str]) -> int:
    import os

    from jailer.core import errors
    from jailer.frontends import jaildef
    from jailer.objects import lifecycle

    for name in names:  # all jails? (else an OCI container, or an error: the full CLI)
        if not (jaildef.NAME_RE.match(name) and os.path.exists(jaildef.definition_path(name))):
            return -1
    for name in names:
        try:
            lifecycle.start(name)
        except Exception as e:  # noqa: BLE001 - report() re-raises what is not a user error
            return errors.report(e, errors.VERB)
    return 0


if __name__ == "__main__":
    main()
