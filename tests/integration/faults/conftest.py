"""Fault injection: the named-jail fixtures (private config and run dirs, the ``jl``
runner, the jail leak check) are the jails tests' own, the OCI bundle the OCI tests'."""

from tests.integration.jails.conftest import (  # noqa: F401 - fixtures, used by name
    jail_env,
    jail_root,
    jl,
    listing,
    no_jail_leaks,
)
from tests.oci.conftest import bundle, oci_root  # noqa: F401, E402
