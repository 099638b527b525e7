"""cgroups: a standalone cgroup v2 / v1 library (see issue 4). Independent of jailer."""
