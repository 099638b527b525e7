"""What every command module shares: one-line errors (``fail``), the error boundary of a verb
(``guard``: ``jailer.core.errors.report`` decides the line and the exit status), and ``jailer
run``'s options added from the one table."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from jailer.core import errors
from jailer.frontends import cliopts


def fail(msg: str, code: int = errors.EXIT_RUNTIME) -> NoReturn:
    """``jailer: MSG`` to the --log file and stderr, then exit with ``code``."""
    errors.say(msg)
    sys.exit(code)


def guard(fn, *args, kind: str = errors.VERB, **kw):
    """Call ``fn``; a failure becomes one line and the exit status of a ``kind`` command."""
    try:
        return fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 - report() re-raises what is not a user error
        sys.exit(errors.report(e, kind))


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
