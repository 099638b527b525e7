"""Start one container with Spec fields that no flag of ``jailer run`` sets (an ablation):
``CONFIG ROOTFS CMD...`` where CONFIG is JSON ``{"level": ..., "set": {field: value}}``.

The same path as ``jailer run``: ``cliopts.to_spec``, then the flips, then ``Launch``.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from jailer.core import errors
    from jailer.core.errors import JailerError
    from jailer.engine.launcher import Launch
    from jailer.frontends import cliopts

    if len(argv) < 3:
        sys.stderr.write("usage: ablate CONFIG ROOTFS CMD...\n")
        return 2
    cfg = json.loads(argv[0])
    opts = cliopts.defaults()
    opts.update(level=cfg["level"], no_tty=True)
    try:
        spec = cliopts.to_spec(argv[1], argv[2:], opts)
        for key, value in cfg.get("set", {}).items():
            if key not in spec.__slots__:
                raise JailerError(f"ablation: Spec has no field {key!r}")
            setattr(spec, key, value)
        return Launch(spec).run().returncode
    except Exception as e:  # noqa: BLE001 - report() re-raises a bug
        return errors.report(e)
