"""Quantities for people: byte counts as "1.5 MiB"."""

from __future__ import annotations


def human_size(n: int | None, short: bool = False) -> str:
    """Bytes for people: "1.5 MiB" (or "1.5M" with ``short``); "?" when unknown."""
    if n is None:
        return "?"
    units = ("B", "K", "M", "G") if short else ("B", " KiB", " MiB", " GiB")
    for unit in units:
        if n < 1024 or unit == units[-1]:
            return f"{n:.0f}{unit if short else ' B'}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)
