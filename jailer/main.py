"""Console entry point. ``jailer run`` takes a fast path that never imports click."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "run":
        from jailer import cliopts

        parsed = cliopts.fast_parse(args[1:])
        if parsed is not None:
            sys.exit(cliopts.run_cli(*parsed))
    from jailer.cli import cli

    cli.main(args=args, prog_name="jailer")


if __name__ == "__main__":
    main()
