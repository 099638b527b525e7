"""The status of a jail or OCI container and which verbs each status allows: one ``Guard`` per
verb and kind, with the refusal that verb has always given (runc's wording for containers)."""

from __future__ import annotations

import enum

from jailer.core.errors import JailerError


class Status(enum.StrEnum):
    """runtime-spec's statuses (``creating`` while a runtime still sets it up)."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


ALL = frozenset(Status)
ACTIVE = frozenset({Status.RUNNING, Status.PAUSED})  # its command runs (maybe frozen)
LIVE = ALL - {Status.STOPPED}  # a process of it exists


def of(st: dict) -> Status:
    """The status a state dict records (anything unknown counts as stopped)."""
    try:
        return Status(st.get("status", "stopped"))
    except ValueError:
        return Status.STOPPED


class Guard:
    """Which statuses a verb accepts; ``refusal`` (formatted with ``name``, ``status`` and
    ``pid``) otherwise, or the one ``special`` names for that status. ``no_cgroup`` is what
    the verb says when it needs the cgroup and there is none (None: it does without)."""

    __slots__ = ("allowed", "refusal", "special", "no_cgroup")

    def __init__(self, allowed: frozenset[Status] = ALL, refusal: str = "",
                 special: dict[Status, str] | None = None, *,
                 no_cgroup: str | None = None) -> None:
        self.allowed = allowed
        self.refusal = refusal
        self.special = special or {}
        self.no_cgroup = no_cgroup

    def allows(self, status: str) -> bool:
        return status in self.allowed

    def check(self, name: str, st: dict) -> None:
        """Raise the verb's refusal (exit status 1) unless ``st``'s status is allowed."""
        status = of(st)
        if status in self.allowed:
            return
        msg = self.special.get(status, self.refusal)
        raise JailerError(msg.format(name=name, status=status.value, pid=st.get("pid")),
                          exit_code=1)

    def need_cgroup(self, name: str, cg):
        """``cg``, or the verb's refusal when it is None."""
        if cg is None and self.no_cgroup is not None:
            raise JailerError(self.no_cgroup.format(name=name), exit_code=1)
        return cg


class Guards:
    """The guard of each verb for one kind of object."""

    VERBS = ("start", "kill", "kill_all", "pause", "resume", "exec", "delete", "ps", "stats",
             "update")
    __slots__ = VERBS

    def __init__(self, **guards: Guard) -> None:
        if set(guards) != set(self.VERBS):
            raise TypeError(f"Guards needs exactly {', '.join(self.VERBS)}")
        for verb, guard in guards.items():
            setattr(self, verb, guard)


_JAIL_RUNS = "cannot {verb} jail {{name}}: it is not running"


def _jail(verb: str) -> str:
    return _JAIL_RUNS.format(verb=verb)


JAIL = Guards(
    start=Guard(ALL - ACTIVE - {Status.CREATING}, "jail {name} is already running (pid {pid})"),
    kill=Guard(ACTIVE, _jail("signal")),
    kill_all=Guard(ACTIVE, _jail("signal")),
    pause=Guard(ACTIVE, _jail("pause"), no_cgroup="cannot pause jail {name}: it has no "
                "cgroup (level jail without limits)"),
    resume=Guard(frozenset({Status.PAUSED}), "cannot resume jail {name}: it is not paused",
                 no_cgroup="cannot resume jail {name}: it has no cgroup"),
    exec=Guard(frozenset({Status.RUNNING}), _jail("exec in"), {
        Status.PAUSED: "cannot exec in jail {name}: it is paused (jailer resume {name})"}),
    delete=Guard(ALL - ACTIVE - {Status.CREATING},
                 "jail {name} is running: stop it first, or rm --force"),
    ps=Guard(ACTIVE, _jail("list the processes of")),
    stats=Guard(ACTIVE, _jail("read the stats of"), no_cgroup="jail {name} has no cgroup: "
                "no stats"),
    update=Guard(no_cgroup="cannot update jail {name} while it runs: it has no cgroup "
                 "(restart it to apply)"),
)

CONTAINER = Guards(
    start=Guard(frozenset({Status.CREATED}), "cannot start an already running container", {
        Status.STOPPED: "cannot start a container that has stopped"}),
    kill=Guard(LIVE, "container not running"),
    # kill --all: whatever is left in its cgroup, in any status (runc: a stopped container's
    # leftover processes, e.g. in a pod's shared pid namespace, are what engines kill with it)
    kill_all=Guard(),
    pause=Guard(frozenset({Status.RUNNING}), "container not running",
                no_cgroup="container has no cgroup: cannot pause"),
    resume=Guard(frozenset({Status.PAUSED}), "container not paused",
                 no_cgroup="container has no cgroup: cannot resume"),
    exec=Guard(frozenset({Status.RUNNING, Status.CREATED}),
               "cannot exec in a stopped container",
               {Status.PAUSED: "cannot exec in a paused container"}),
    # runtime.md: deleting a container that is not stopped fails and has no effect (runc
    # deletes a created one; runtime-tools checks the spec's rule; --force does it)
    delete=Guard(ALL - ACTIVE - {Status.CREATED},
                 "cannot delete container {name} that is not stopped: {status}"),
    ps=Guard(),
    stats=Guard(),
    update=Guard(no_cgroup="container has no cgroup"),
)
