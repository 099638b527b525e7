"""Real cgroups on this host, whatever its layout (here: a v1/v2 hybrid, so the v1 backend).
Needs root; every cgroup is created below our own and removed again."""

from __future__ import annotations

import pytest

import cgroups
from tests.integration.cgroups.realtier import RealTier

pytestmark = pytest.mark.root


class TestHostTier(RealTier):
    def test_backend_matches_the_host(self):
        cg = cgroups.open_manager("probe")
        assert cg.version == ("v2" if cgroups.detect() == "v2" else "v1")
