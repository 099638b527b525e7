"""Structured errors: what failed, where, and what to do about it; the one boundary where
library exceptions become a ``JailerError`` (``convert``), and the one place that decides a
failed command's exit status (``exit_status``) and reports it (``report``)."""

from __future__ import annotations

import os
import sys

# exit statuses of `jailer run` and `exec`, as podman/docker use them
EXIT_RUNTIME = 125
EXIT_NOEXEC = 126
EXIT_NOTFOUND = 127
EXIT_TIMEOUT = 124
# the status of any other failed verb (named-jail and OCI verbs), as runc's
EXIT_VERB = 1

# how a command reports a runtime failure (see exit_status)
RUN = "run"      # jailer run, exec: the error's own status (125, 126, 127, 124)
VERB = "verb"    # create/start/kill/delete/...: runc's 1 for a runtime error (125)
OCI = "oci"  # an OCI container's create, or jailer run --bundle (runc run): always 1, as runc

# library exceptions whose message is written for people: (module, class). ``convert`` looks
# them up in sys.modules, so that checking for one never imports its library.
LIBRARY_ERRORS = (("cgroups.base", "CgroupError"), ("images.store", "ImageError"),
                  ("jailer.policy.seccomp", "SeccompError"), ("jailer.policy.caps", "CapError"))

_HINTS = {
    ("exec", 2): "the command does not exist inside the root filesystem",
    ("exec", 13): "the command is not executable (check its mode and the mount's noexec)",
    ("exec", 8): "the file is not a binary this kernel can run (missing interpreter?)",
    ("rlimits", 1): "raising a hard limit needs CAP_SYS_RESOURCE, which this host does not "
                    "grant: stay within the current hard limit (ulimit -H -a)",
}


class JailerError(Exception):
    """A user-facing failure: one line on stderr, a non-zero exit, never a traceback."""

    def __init__(self, message: str, *, stage: str = "", syscall: str = "", path: str = "",
                 errno: int = 0, hint: str = "", exit_code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.syscall = syscall
        self.path = path
        self.errno = errno
        self.hint = hint or _HINTS.get((stage, errno), "")
        self.exit_code = exit_code

    def __str__(self) -> str:
        text = f"{self.stage}: {self.message}" if self.stage else self.message
        if self.errno and f"errno {self.errno}" not in text:
            text += f" (errno {self.errno})"
        if self.hint:
            text += f": {self.hint}"
        return text

    def to_dict(self) -> dict:
        """Wire form, sent from a child to its parent over the sync channel."""
        return {"message": self.message, "stage": self.stage, "syscall": self.syscall,
                "path": self.path, "errno": self.errno, "hint": self.hint,
                "exit_code": self.exit_code}

    @classmethod
    def from_dict(cls, d: dict) -> JailerError:
        msg = d.pop("message")
        return cls(msg, **d)

    @classmethod
    def from_oserror(cls, stage: str, exc: OSError, exit_code: int = EXIT_RUNTIME,
                     hint: str = "") -> JailerError:
        """Wrap an OSError from the syscall layer, keeping call, path and errno."""
        err = exc.errno or 0
        text = exc.strerror or os.strerror(err)
        call = text.split("(", 1)[0] if "(" in text else ""
        if exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        return cls(text, stage=stage, syscall=call, path=exc.filename or "", errno=err,
                   exit_code=exit_code, hint=hint)


def convert(exc: BaseException, stage: str = "") -> JailerError | None:
    """``exc`` as a JailerError: itself, a library error's message, or an OSError with its
    call, path, errno (and ``stage``). None for anything else (a bug, which must show its
    traceback)."""
    if isinstance(exc, JailerError):
        return exc
    for module, name in LIBRARY_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(exc, cls):
            return JailerError(str(exc))
    if isinstance(exc, OSError):
        return JailerError.from_oserror(stage, exc)
    return None


def exit_status(err: JailerError, kind: str = RUN) -> int:
    """The exit status of a command of ``kind`` (RUN, VERB, OCI) that failed with err."""
    if kind == OCI:
        return EXIT_VERB
    if kind == VERB and err.exit_code == EXIT_RUNTIME:
        return EXIT_VERB
    return err.exit_code


def report(exc: BaseException, kind: str = RUN, stage: str = "") -> int:
    """Report a failure in one line (the --log file first, then stderr, which may be closed
    or unwritable) and return the command's exit status; re-raise what ``convert`` does not
    know (a bug)."""
    err = convert(exc, stage)
    if err is None:
        raise exc
    say(str(err))
    return exit_status(err, kind)


# control characters a message may echo from the input, escaped so that it stays one line
_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09} | {0x0A: "\\n"}


def say(msg: str) -> None:
    """``jailer: MSG`` to the --log file and stderr (never raising), on one line."""
    msg = msg.translate(_ONE_LINE)
    log_line("error", msg)
    to_stderr(f"jailer: {msg}\n")


def warn(msg: str) -> None:
    """A warning goes where runc's go: the --log file when the caller gave one (an OCI
    container's stderr is the workload's, which the engine shows to its user), else stderr."""
    msg = msg.translate(_ONE_LINE)
    if not log_line("warning", msg):
        to_stderr(f"jailer: warning: {msg}\n")


def to_stderr(text: str) -> None:
    """Write ``text`` to stderr, never raising: a closed, read-only or missing stderr
    (containerd's shim gives a pod sandbox /dev/null opened read-only) drops it, and the
    stream is replaced so that Python's exit does not fail flushing it again (status 120)."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


_log_fd = -1  # the --log file, held open (hold_log) for a process that may lose its path


def hold_log() -> None:
    """Open the --log file now and write to it through that fd from here on: pid 1 of an OCI
    container reports what fails after `jailer create` returned, from inside a root where
    the engine's path (in the bundle, say) is out of reach. Close-on-exec: the workload
    never holds it."""
    global _log_fd
    import json  # noqa: F401 - loaded now: log_line imports them, and after pivot_root
    import time  # noqa: F401 - the library is out of reach

    path = os.environ.get("JAILER_LOG")
    if path and _log_fd < 0:
        try:
            _log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                              0o600)
        except OSError:
            pass


def log_line(level: str, msg: str) -> bool:
    """Append ``msg`` to the runc-style --log file (``$JAILER_LOG``, text or json as
    ``$JAILER_LOG_FORMAT`` says), where engines such as podman read a runtime's messages.
    False when there is no log file."""
    path = os.environ.get("JAILER_LOG")
    if not path:
        return False
    import json
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if os.environ.get("JAILER_LOG_FORMAT") == "json":
        line = json.dumps({"level": level, "msg": msg, "time": now})
    else:
        line = f'time="{now}" level={level} msg={json.dumps(msg)}'
    data = (line + "\n").encode()
    try:
        if _log_fd >= 0:
            os.write(_log_fd, data)
        else:
            with open(path, "ab") as f:
                f.write(data)
    except OSError:
        return False
    return True
