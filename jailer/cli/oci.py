"""runc's verbs that only OCI containers have: state, events, features, spec; and ``run``'s
OCI form (``jailer run --bundle DIR ID``) beside ``jailer run ROOTFS CMD``."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from jailer.cli.common import fail, guard
from jailer.core.errors import JailerError
from jailer.objects import handles
from jailer.objects.status import LIVE, Status


@click.command()
@click.argument("name")
def state(name: str) -> None:
    """The OCI state of a container or jail (runtime-spec runtime.md) as JSON."""
    click.echo(json.dumps(guard(guard(handles.open, name).state), indent=2))


@click.command()
@click.option("--stats", "once", is_flag=True, help="Print the stats once and exit.")
@click.option("--interval", default="5s", metavar="DURATION",
              help="Between stats events (e.g. 5s, 500ms).")
@click.argument("name")
def events(name: str, once: bool, interval: str) -> None:
    """Stats (and OOM) events of a container as JSON lines, until it stops (runc events)."""
    seconds = _duration(interval)
    h = guard(handles.open, name)

    def alive() -> bool:
        try:
            return h.status()["status"] in LIVE - {Status.CREATING}
        except JailerError:  # deleted meanwhile
            return False

    oom = None
    while True:
        data = guard(h.stats)
        if oom is not None and (data.get("oom_kill") or 0) > oom:
            click.echo(json.dumps({"type": "oom", "id": name}))
        oom = data.get("oom_kill") or 0
        click.echo(json.dumps({"type": "stats", "id": name, "data": data}))
        sys.stdout.flush()
        if once:
            return
        time.sleep(seconds)
        if not alive():
            return


def _duration(text: str) -> float:
    for suffix, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * mult
            except ValueError:
                break
            if value > 0:
                return value
            break
    fail(f"--interval {text!r}: a duration such as 5s or 500ms", 1)


@click.command()
def features() -> None:
    """What jailer implements, as runtime-spec features.md JSON."""
    from jailer.frontends import ociconfig as oci

    click.echo(json.dumps(oci.features(), indent=2))


@click.command(name="spec")
@click.option("-b", "--bundle", default=".", metavar="DIR", help="Where to write config.json.")
@click.option("--rootless", is_flag=True, help="A config for an unprivileged user.")
def spec_(bundle: str, rootless: bool) -> None:
    """Write a default config.json (as runc spec) that jailer run --bundle accepts as is."""
    from jailer.frontends import ociconfig as oci

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        fail("File config.json exists. Remove it first", 1)
    try:
        with open(path, "x") as f:
            json.dump(oci.default_config(rootless=rootless), f, indent="\t")
            f.write("\n")
    except OSError as e:
        fail(f"spec: {path}: {e.strerror}", 1)
