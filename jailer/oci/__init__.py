"""The OCI front end: an OCI bundle's config.json (runtime-spec v1.x, Linux) into a ``Spec``,
and the content of ``jailer spec`` and ``jailer features``. See ``jailer.oci.config``."""
