"""What every command module shares: one-line errors (``fail``), the JailerError boundary of
a verb (``guard``), the error log, and ``jailer run``'s options added from the one table."""

from __future__ import annotations

import sys

import click

from jailer.core.errors import JailerError
from jailer.frontends import cliopts


def fail(msg: str, code: int = 125) -> None:
    """Print ``jailer: MSG`` on stderr, log it, exit with ``code``."""
    click.echo(f"jailer: {msg}", err=True)
    log_error(msg)
    sys.exit(code)


def log_error(msg: str) -> None:
    """Also append the error to --log (engines such as podman read it from there)."""
    from jailer.core.errors import log_line

    log_line("error", msg)


def guard(fn, *args, **kw):
    """Call ``fn``; a JailerError or OSError becomes one line and exit status 1 (runc's)."""
    try:
        return fn(*args, **kw)
    except JailerError as e:
        fail(str(e), e.exit_code if e.exit_code not in (125,) else 1)
    except OSError as e:
        fail(str(JailerError.from_oserror("", e)), 1)


def run_options(exclude: tuple[str, ...] = ()):
    """Decorator adding ``jailer run``'s options (from the one table), minus ``exclude``."""

    def deco(f):
        return _add_options(f, [o for o in cliopts.RUN_OPTIONS if o[1] not in exclude])

    return deco


def _add_options(f, options):
    for flags, dest, kind, metavar, help_ in reversed(options):
        if kind == "flag":
            f = click.option(*flags, dest, is_flag=True, help=help_)(f)
        elif kind == "multi":
            f = click.option(*flags, dest, multiple=True, metavar=metavar, help=help_)(f)
        elif kind == "float":
            f = click.option(*flags, dest, type=float, metavar=metavar, help=help_)(f)
        elif kind.startswith("choice:"):
            f = click.option(*flags, dest, type=click.Choice(kind[7:].split(",")),
                             help=help_)(f)
        else:
            f = click.option(*flags, dest, metavar=metavar, help=help_)(f)
    return f
