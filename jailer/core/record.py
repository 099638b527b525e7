"""``Record``: a small immutable data class written by hand (fields from ``__slots__``).

The ``dataclasses`` module imports ``inspect``, which every start would pay for; these records
need only a constructor, equality, a hash, a repr and ``replace``.
"""

from __future__ import annotations


class Record:
    """Positional or keyword construction from ``__slots__`` (``_defaults`` for the optional
    ones), frozen once made; ``replace(**changes)`` makes a changed copy."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, *args: object, **kw: object) -> None:
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}: at most {len(names)} arguments")
        values = dict(zip(names, args, strict=False))
        for key, value in kw.items():
            if key not in names or key in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated field {key!r}")
            values[key] = value
        for name in names:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
                values[name] = self._defaults[name]
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (use replace)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def values(self) -> tuple:
        """The fields in ``__slots__`` order."""
        return tuple(getattr(self, n) for n in self.__slots__)

    def replace(self, **changes: object) -> Record:
        return type(self)(**{**dict(zip(self.__slots__, self.values(), strict=True)), **changes})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self.values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"
