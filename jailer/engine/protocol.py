"""The messages between the runtime, its setup child and the container's pid 1, with
``send``/``recv`` (a 4-byte little-endian length, then the message, marshalled).

Pipes and who holds them (all O_CLOEXEC, so the workload inherits none)::

    up    setup child, pid 1 ──► runtime      Pid, Pty, Created, Failed; EOF once every
                                              writer has exec'd (the workload runs) or died
    down  runtime ──► pid 1                   Go
    pty   pid 1 ──► runtime                   the pty master (SCM_RIGHTS on a socketpair)
    fifo  pid 1 ──► `jailer start`            one byte (OCI create: runc's exec fifo)
    start detached runtime ──► `jailer start` Started or Failed (a named jail's start)

A start, step by step (``jailer.engine.launcher``):

1. The runtime forks the setup child; it keeps the read end of *up* and the write end of
   *down*, the child the other two.
2. The setup child makes the namespaces and the host-side mounts, forks pid 1 and sends
   ``Pid`` (the pid) up, then exits. At the chroot level there is no setup child: pid 1 itself
   sends ``Pid`` and goes straight on.
3. The runtime reaps the setup child (pid 1 is now its child: it is a subreaper), sets
   oom_score_adj, runs ``on_pid`` (network set-up; OCI prestart and createRuntime hooks)
   and sends ``Go`` (value: ``hook_state``) down; ``hook_state`` is the OCI state JSON that pid 1's
   startContainer hooks read, or None.
4. pid 1 waits for ``Go`` (anything else, or EOF: it exits), does the mounts inside its
   namespaces, the hostname and loopback. With a terminal it opens a pty, sends ``Pty``
   up and the master over the *pty* socket; the runtime receives the fd. OCI create with
   create-time hooks: before pivot_root pid 1 sends ``Mounted`` up and waits for a second
   ``Go``; the runtime runs the prestart, createRuntime and createContainer hooks meanwhile.
5. OCI create only: pid 1 sends ``Created`` up; the runtime records it 'created' (state,
   pid file), sends ``Recorded`` down and returns (`jailer create` is done; pid 1 exits at
   EOF instead, if the runtime died first). pid 1 opens the exec fifo for writing, which
   blocks until `jailer start` opens it for reading; it writes one byte and goes on,
   holding the fifo open (close-on-exec) to the exec: `jailer start` waits for its EOF, or
   reads the error of a failure before it (``to_dict()`` as one JSON object), which pid 1
   also appends to the engine's --log file.
6. pid 1 execs the workload: the *up* pipe reaches EOF, and the runtime supervises.

Any failure in the setup child or in pid 1 sends ``Failed`` up (its value: the
``JailerError`` as a dict: stage, syscall, path, errno, hint) and the sender exits with the
error's code; the runtime raises it and undoes the start. A named jail's detached runtime
reports to `jailer start` over *start*: ``Started`` (its value: the jail's state) once the
command runs, or ``Failed``.
"""

from __future__ import annotations

import marshal
import os


class Message(tuple):
    """One message on a pipe: ``(kind, value)``, its ``kind`` one of the names below."""

    __slots__ = ()

    def __new__(cls, kind: str, value: object = None) -> Message:
        return tuple.__new__(cls, (kind, value))

    kind = property(lambda self: self[0])
    value = property(lambda self: self[1])


# the kinds, and what each one's value is
PID = "Pid"          # the host pid of the container's pid 1 (setup child, or pid 1 -> runtime)
GO = "Go"            # pid 1 may go on (runtime -> pid 1): the state startContainer hooks read
PTY = "Pty"          # pid 1 opened a terminal; its master follows on the pty socket (no value)
MOUNTED = "Mounted"  # OCI create-time hooks: pid 1 made its mounts, waits for Go (no value)
CREATED = "Created"  # OCI create: pid 1 is set up and waits on the exec fifo (no value)
RECORDED = "Recorded"  # OCI create recorded pid 1 'created' (runtime -> pid 1; no value)
FAILED = "Failed"    # a start failed: JailerError.to_dict(); the sender exits
STARTED = "Started"  # a named jail's detached runtime started it: the jail's state
KINDS = frozenset({PID, GO, PTY, MOUNTED, CREATED, RECORDED, FAILED, STARTED})


def send(fd: int, kind: str, value: object = None) -> None:
    """Write one message to ``fd`` in one write."""
    data = marshal.dumps((kind, value))
    os.write(fd, len(data).to_bytes(4, "little") + data)


def recv(fd: int) -> Message | None:
    """The next message on ``fd``, or None at EOF (every writer exec'd or exited)."""
    head = os.read(fd, 4)
    if not head:
        return None
    size = int.from_bytes(head, "little")
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    kind, value = marshal.loads(data)
    if kind not in KINDS:
        raise ValueError(f"protocol: unknown message {kind!r}")
    return Message(kind, value)
