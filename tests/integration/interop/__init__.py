"""Interop tests: real OCI clients (podman, containerd) drive runc and jailer the same way."""
