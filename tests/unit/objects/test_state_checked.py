"""``state.checked``: every field of a state file, fed every wrong type, makes the file
"unreadable" (StateError), never a state taken as is; ids and cgroup names are never paths."""

from __future__ import annotations

import json

import pytest

from jailer.objects import state

GOOD = {"name": "web", "id": "jail.web", "kind": "jail", "status": "running", "pid": 42,
        "pid_start": "123", "boot_id": "b", "monitor": "pid:7:8", "hostname": "web",
        "image": "busybox", "ip": "", "net": "loopback", "host_if": "", "exit_code": 0,
        "restarts": 1, "started": 1.5, "finished": 2, "stop_requested": False,
        "uid_base": 1_000_000_000, "cgroup": "jailer-jail.web", "cgroup_root": False,
        "start_id": "abc", "bundle": "/b", "rootfs": "/r", "created": "now", "owner": "",
        "ociVersion": "1.0.2", "annotations": {}, "hooks": {}, "systemd": ""}
SAMPLES = {"a string": "x", "an integer": 5, "a float": 1.5, "true": True, "a list": [1, 2],
           "an object": {"a": 1}}


def test_the_good_state_is_taken_and_covers_every_field():
    assert set(GOOD) == set(state.FIELDS)  # the control: every field is exercised below
    assert state.checked(json.loads(json.dumps(GOOD))) == GOOD


@pytest.mark.parametrize("field", sorted(state.FIELDS))
def test_every_field_with_every_wrong_type_is_an_unreadable_state(field):
    typ = state.FIELDS[field]
    wrong = [v for v in SAMPLES.values()
             if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool)]
    assert wrong
    for value in wrong:
        with pytest.raises(state.StateError, match=field):
            state.checked({**GOOD, field: value})


@pytest.mark.parametrize("doc", [[1, 2, 3], "running", 5, None])
def test_a_file_that_holds_no_object_is_unreadable(doc):
    with pytest.raises(state.StateError):
        state.checked(doc)


@pytest.mark.parametrize("field,value", [
    ("id", "../../../../tmp/x"), ("id", "/tmp/x"), ("id", ".."), ("start_id", "a/b"),
    ("cgroup", "../../x"), ("cgroup", "a/../../b"), ("cgroup", "/"), ("cgroup", "a\nb"),
    ("status", "fortress"), ("pid", -1)])
def test_ids_and_cgroups_are_never_paths_and_values_stay_in_range(field, value):
    with pytest.raises(state.StateError):
        state.checked({**GOOD, field: value})


def test_null_means_unset_and_unknown_fields_are_dropped():
    st = state.checked({"status": "stopped", "exit_code": None, "surprise": 1})
    assert st == {"status": "stopped", "pid": 0}


def test_a_truncated_or_empty_file_is_unreadable_and_a_missing_one_is_none(tmp_path):
    assert state.read(str(tmp_path)) is None
    for text in ("", '{"status": "runn'):
        (tmp_path / "state.json").write_text(text)
        with pytest.raises(state.StateError, match="not JSON"):
            state.read(str(tmp_path))
