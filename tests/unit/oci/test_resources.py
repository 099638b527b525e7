"""linux.resources into cgroups.Limits."""

from __future__ import annotations

import pytest

from cgroups import UNLIMITED, DeviceRule, Limits
from jailer.frontends import ociconfig as oc


def limits(res: dict, warnings: list[str] | None = None, version: str = "v1") -> Limits:
    out = [] if warnings is None else warnings
    return oc.limits_from_resources(res, warn=out.append, version=version)


def test_nothing_is_an_empty_limits():
    assert limits({}) == Limits() and oc.limits_from_resources(None) == Limits()
    # the runc spec default: deny all (the launcher appends the default devices)
    warnings: list[str] = []
    assert limits({"devices": [{"allow": False, "access": "rwm"}]}, warnings) == Limits(
        devices=[DeviceRule(False, "a")])
    assert warnings == []


def test_device_rules_in_order():
    res = {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 10, "access": "rw"},
        {"allow": False, "type": "c", "major": -1, "minor": -1, "access": "m"},
        {"allow": True, "type": "u", "major": 4, "minor": 1},
    ]}
    assert limits(res).devices == [
        DeviceRule(False, "a"), DeviceRule(True, "b", 7, 3, "r"),
        DeviceRule(True, "c", 10, None, "rw"), DeviceRule(False, "c", None, None, "m"),
        DeviceRule(True, "c", 4, 1, "rwm")]
    assert limits({"devices": []}).devices == []


@pytest.mark.parametrize("rule,says", [
    ({"access": "rwm"}, "linux.resources.devices[0].allow is missing"),
    ({"allow": "yes"}, "linux.resources.devices[0].allow must be true or false"),
    ({"allow": True, "type": "p"}, "linux.resources.devices[0].type 'p' is not a device rule"),
    ({"allow": True, "type": "c", "major": -2}, "linux.resources.devices[0].major must be"),
    ({"allow": True, "type": "c", "access": "rx"}, "linux.resources.devices[0] access 'rx'"),
])
def test_bad_device_rules(rule, says):
    from jailer.core.errors import JailerError

    with pytest.raises(JailerError) as info:
        limits({"devices": [rule]})
    assert says in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("res,want", [
    ({"memory": {"limit": 67108864}}, Limits(memory_max=67108864)),
    ({"memory": {"limit": -1}}, Limits(memory_max=UNLIMITED)),
    ({"memory": {"limit": 0}}, Limits()),  # 0: not set
    ({"memory": {"limit": 1 << 30, "swap": 2 << 30}},
     Limits(memory_max=1 << 30, memory_swap=2 << 30)),
    ({"memory": {"limit": 1 << 30, "swap": -1}},
     Limits(memory_max=1 << 30, memory_swap=UNLIMITED)),
    ({"memory": {"limit": -1, "swap": -1}},
     Limits(memory_max=UNLIMITED, memory_swap=UNLIMITED)),
    ({"memory": {"limit": 1 << 30, "swap": 1 << 30}},
     Limits(memory_max=1 << 30, memory_swap=1 << 30)),
    ({"cpu": {"quota": 50000, "period": 100000}}, Limits(cpu_quota=50000, cpu_period=100000)),
    ({"cpu": {"quota": -1}}, Limits(cpu_quota=UNLIMITED)),
    ({"cpu": {"quota": 0, "period": 0, "shares": 0}}, Limits()),
    ({"cpu": {"cpus": "0-3,6", "mems": "0"}}, Limits(cpuset_cpus="0-3,6", cpuset_mems="0")),
    ({"cpu": {"cpus": ""}}, Limits()),
    ({"pids": {"limit": 100}}, Limits(pids_max=100)),
    ({"pids": {"limit": 0}}, Limits(pids_max=UNLIMITED)),
    ({"pids": {"limit": -1}}, Limits(pids_max=UNLIMITED)),
    ({"blockIO": {"weight": 500}}, Limits(io_weight=500)),
    ({"blockIO": {"weight": 0}}, Limits()),
    ({"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 524288},
                                   {"major": 8, "minor": 16, "rate": 0}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 253, "minor": 1, "rate": 50}]}},
     Limits(io_max={"8:0": {"rbps": 1048576, "wbps": 524288, "riops": 100},
                    "8:16": {"wbps": UNLIMITED}, "253:1": {"wiops": 50}})),
])
def test_conversion(res, want):
    warnings: list[str] = []
    assert limits(res, warnings) == want
    assert warnings == []


@pytest.mark.parametrize("shares,weight", [
    (2, 1), (1024, 39), (2048, 79), (262144, 10000), (100, 4),
])
def test_cpu_shares_kept_and_converted_for_v2_like_runc(shares, weight):
    from cgroups.base import shares_to_weight

    assert limits({"cpu": {"shares": shares}}).cpu_shares == shares  # v1 writes them as given
    assert shares_to_weight(shares) == weight == 1 + ((shares - 2) * 9999) // 262142


@pytest.mark.parametrize("res,words", [
    ({"memory": {"limit": -5}}, ["linux.resources.memory.limit", "-5"]),
    ({"memory": {"limit": "5"}}, ["linux.resources.memory.limit must be an integer",
                                  "got a string"]),
    ({"memory": {"swap": 1 << 30}}, ["linux.resources.memory.swap needs memory.limit"]),
    ({"memory": {"limit": -1, "swap": 1 << 30}},
     ["linux.resources.memory.swap (1073741824) must be -1 when memory.limit is -1"]),
    ({"memory": {"limit": 1 << 30, "swap": 1000}},
     ["linux.resources.memory.swap (1000) must be at least memory.limit"]),
    ({"memory": {"limit": 1 << 30, "swap": -7}}, ["linux.resources.memory.swap", "-7"]),
    ({"memory": []}, ["linux.resources.memory must be an object, got an array"]),
    ({"cpu": {"shares": 1}}, ["linux.resources.cpu.shares 1: must be at least 2"]),
    ({"cpu": {"shares": 999999}}, ["linux.resources.cpu.shares 999999: must be at most "
                                   "262144"]),
    ({"cpu": {"shares": -1}}, ["linux.resources.cpu.shares must be an integer of at least 0, "
                               "got -1"]),
    ({"cpu": {"quota": 10}}, ["linux.resources.cpu.quota 10: must be at least 1000"]),
    ({"cpu": {"quota": -2}}, ["linux.resources.cpu.quota -2: must be at least 1000"]),
    ({"cpu": {"period": 10}}, ["linux.resources.cpu.period 10: must be at least 1000"]),
    ({"cpu": {"period": 5000000}}, ["linux.resources.cpu.period", "at most 1000000"]),
    ({"cpu": {"cpus": "0-"}}, ["linux.resources.cpu.cpus", "not a CPU list"]),
    ({"cpu": {"mems": "x"}}, ["linux.resources.cpu.mems", "not a CPU list"]),
    ({"cpu": {"cpus": 3}}, ["linux.resources.cpu.cpus must be a string"]),
    ({"pids": {"limit": "10"}}, ["linux.resources.pids.limit must be an integer"]),
    ({"blockIO": {"weight": 5}}, ["linux.resources.blockIO.weight 5: must be at least 10"]),
    ({"blockIO": {"weight": 5000}}, ["linux.resources.blockIO.weight 5000: must be at most "
                                     "1000"]),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
     ["linux.resources.blockIO.throttleReadBpsDevice[0].minor is missing"]),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": -1}]}},
     ["linux.resources.blockIO.throttleReadBpsDevice[0].rate must be an integer of at "
      "least 0"]),
    ({"blockIO": {"throttleWriteIOPSDevice": {}}},
     ["linux.resources.blockIO.throttleWriteIOPSDevice must be an array of objects"]),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
     ["linux.resources.hugepageLimits[0].pageSize must be a page size such as 2MB"]),
    ({"hugepageLimits": [{"pageSize": "2MB"}]},
     ["linux.resources.hugepageLimits[0].limit is missing"]),
    ({"unified": {"memory.high": "1G"}},
     ["linux.resources.unified cannot be used: cgroup v2 unified resources cannot be set on "
      "cgroup v1"]),
    ({"unified": {"memory.high": 5}}, ["linux.resources.unified['memory.high'] must be a "
                                       "string"]),
    ({"rdma": {"mlx5_1": {"hcaHandles": -3}}}, ["linux.resources.rdma.mlx5_1.hcaHandles"]),
    ({"memory": {"swappiness": 101}}, ["linux.resources.memory.swappiness must be 0..100"]),
    ({"cpu": {"idle": 2}}, ["linux.resources.cpu.idle must be"]),
    ({"network": {"priorities": [{"name": "a/b", "priority": 1}]}},
     ["linux.resources.network.priorities[0].name must be a network interface name"]),
    ({"devices": {}}, ["linux.resources.devices must be an array of objects"]),
])
def test_bad_values(res, words):
    with pytest.raises(oc.ConfigError) as info:
        limits(res)
    text = str(info.value)
    assert text.startswith("config.json: ") and "\n" not in text
    for w in words:
        assert w in text, text


@pytest.mark.parametrize("res,want", [
    ({"memory": {"reservation": 1 << 20}}, Limits(memory_low=1 << 20)),
    ({"memory": {"swappiness": 10}}, Limits(memory_swappiness=10)),
    ({"memory": {"disableOOMKiller": True}}, Limits(memory_oom_kill_disable=True)),
    ({"cpu": {"realtimeRuntime": 950000, "realtimePeriod": 1000000}},
     Limits(cpu_rt_runtime=950000, cpu_rt_period=1000000)),
    ({"cpu": {"idle": 1}}, Limits(cpu_idle=1)),
    ({"cpu": {"idle": 0}}, Limits(cpu_idle=0)),
    ({"blockIO": {"leafWeight": 100}}, Limits(io_leaf_weight=100)),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}},
     Limits(io_weight_device={"8:0": 100})),
    ({"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}},
     Limits(net_classid=1048577, net_priorities={"eth0": 5})),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}, Limits(hugetlb={"2MB": 1 << 21})),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}},
     Limits(rdma={"mlx5_1": {"hca_handle": 3, "hca_object": 10000}})),
])
def test_every_knob_converts(res, want):
    warnings: list[str] = []
    assert limits(res, warnings) == want
    assert warnings == []


def test_unified_on_v2_and_v1_only_knobs_dropped_there_with_a_warning():
    assert limits({"unified": {"memory.high": "1G"}}, version="v2") == Limits(
        unified={"memory.high": "1G"})
    warnings: list[str] = []
    res = {"memory": {"swappiness": 10, "reservation": 4096},
           "network": {"classID": 7}, "cpu": {"realtimeRuntime": 1000}}
    assert limits(res, warnings, version="v2") == Limits(memory_low=4096)
    assert sorted(warnings) == sorted(
        f"config.json: linux.resources.{f} is not supported (cgroup v2 has {why}), ignored"
        for f, why in (("memory.swappiness", "no memory.swappiness"),
                       ("network.classID", "no net_cls controller"),
                       ("cpu.realtimeRuntime", "no real-time CPU bandwidth "
                                               "(cpu.rt_runtime_us)")))


@pytest.mark.parametrize("res,field", [
    ({"memory": {"kernel": 1 << 20}}, "memory.kernel"),
    ({"memory": {"kernelTCP": 1 << 20}}, "memory.kernelTCP"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 100}]}},
     "blockIO.weightDevice[0].leafWeight"),
])
def test_knobs_runc_ignores_warn(res, field):
    warnings: list[str] = []
    assert limits(res, warnings) == Limits()
    assert len(warnings) == 1 and warnings[0].startswith(
        f"config.json: linux.resources.{field} is not supported (") and \
        warnings[0].endswith("), ignored")


def test_unset_knobs_do_not_warn():
    warnings: list[str] = []
    limits({"memory": {"reservation": 0, "swappiness": None, "disableOOMKiller": False},
            "blockIO": {"weightDevice": []}}, warnings)
    assert warnings == []


def test_limits_reach_the_spec(tmp_path):
    from . import ALL_CAPS, make_bundle, runc_spec

    cfg = runc_spec()
    cfg["linux"]["resources"] = {"memory": {"limit": 1 << 26}, "pids": {"limit": 64}}
    spec = oc.to_spec(cfg, make_bundle(tmp_path, cfg), "c1", available=ALL_CAPS)
    assert spec.limits == Limits(memory_max=1 << 26, pids_max=64) and spec.cgroup is True
    assert spec.limits.controllers() == {"memory", "pids"}
