"""A small blocking D-Bus client (method calls and signals) over jeepney, the pure-Python D-Bus
library: what the systemd cgroup driver needs and nothing more. jeepney is imported only when
a bus is opened, so importing this module costs nothing of it.

    bus = Bus.system()                       # CgroupError (one line) if the bus is unreachable
    with bus.signals(SENDER, IFACE, "JobRemoved") as sig:   # subscribed before the call
        job, = bus.call(SENDER, PATH, IFACE, "StartUnit", "ss", ("x.service", "fail"))
        body = sig.next(timeout=30)
"""

from __future__ import annotations

import os

from .base import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections import deque

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
"""The system bus when DBUS_SYSTEM_BUS_ADDRESS is not set (D-Bus specification's default)."""


class DBusError(Exception):
    """A method call answered with a D-Bus error: ``name`` (e.g.
    ``org.freedesktop.systemd1.UnitExists``) and the error's text."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{text} ({name})")
        self.name = name
        self.text = text


class Signals:
    """The signals of one kind received on a bus since the context was entered."""

    def __init__(self, bus: Bus, rule: object, local: object) -> None:
        self._bus, self._rule, self._local = bus, rule, local
        self._queue: deque | None = None
        self._handle: object = None

    def __enter__(self) -> Signals:
        from collections import deque

        from jeepney import message_bus

        self._queue = deque()
        self._handle = self._bus.conn.filter(self._local, queue=self._queue)
        self._bus.reply(message_bus.AddMatch(self._rule), 10.0)  # the daemon routes them to us
        return self

    def next(self, timeout: float) -> tuple:
        """The body of the next signal; TimeoutError after ``timeout`` seconds without one."""
        assert self._queue is not None, "use Signals as a context manager"
        return self._bus.conn.recv_until_filtered(self._queue, timeout=timeout).body

    def __exit__(self, *exc: object) -> None:
        from jeepney import message_bus

        try:
            self._handle.close()  # type: ignore[union-attr]
            self._bus.reply(message_bus.RemoveMatch(self._rule), 10.0)
        except (OSError, TimeoutError, DBusError):
            pass  # the connection is going away anyway


class Bus:
    """A connection to a D-Bus message bus (blocking, one caller at a time)."""

    def __init__(self, conn: object, address: str) -> None:
        self.conn = conn  # a jeepney.io.blocking.DBusConnection
        self.address = address

    @classmethod
    def system(cls, address: str | None = None, timeout: float = 5.0) -> Bus:
        """Connect to the system bus (``address``, else $DBUS_SYSTEM_BUS_ADDRESS, else the
        standard socket); an unreachable bus is one CgroupError line."""
        address = address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
        try:
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            raise CgroupError("cgroups: the systemd cgroup driver needs the Python package "
                              "jeepney (pip install jeepney, or apt install python3-jeepney)"
                              ) from None
        try:
            conn = open_dbus_connection(bus=address, auth_timeout=timeout)
        except (OSError, ValueError, TimeoutError) as e:  # jeepney's auth errors: ValueError
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e)
            raise CgroupError(f"cgroups: cannot reach the D-Bus system bus at {address}: {why} "
                              "(the systemd cgroup driver needs systemd as PID 1 and a running "
                              "dbus daemon)") from None
        return cls(conn, address)

    def reply(self, message: object, timeout: float) -> tuple:
        """Send a jeepney message and return the body of its reply; an error reply raises
        DBusError, no reply within ``timeout`` seconds TimeoutError."""
        from jeepney import MessageType
        from jeepney.low_level import HeaderFields

        msg = self.conn.send_and_get_reply(message, timeout=timeout)  # type: ignore
        if msg.header.message_type == MessageType.error:
            name = msg.header.fields.get(HeaderFields.error_name, "?")
            text = msg.body[0] if msg.body and isinstance(msg.body[0], str) else ""
            raise DBusError(name, text)
        return msg.body

    def call(self, dest: str, path: str, interface: str, method: str, signature: str = "",
             body: tuple = (), timeout: float = 30.0) -> tuple:
        """Call ``interface.method`` on object ``path`` of ``dest``; returns the reply's body."""
        from jeepney import DBusAddress, new_method_call

        addr = DBusAddress(path, bus_name=dest, interface=interface)
        return self.reply(new_method_call(addr, method, signature or None, body), timeout)

    def signals(self, sender: str, interface: str, member: str) -> Signals:
        """A context collecting signal ``interface.member`` from ``sender`` from now on."""
        from jeepney import MatchRule

        # the daemon resolves a well-known sender name; a signal carries the unique name, so
        # the local filter matches on interface and member only
        return Signals(self, MatchRule(type="signal", sender=sender, interface=interface,
                                       member=member),
                       MatchRule(type="signal", interface=interface, member=member))

    def close(self) -> None:
        self.conn.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
