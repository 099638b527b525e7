"""``jailer bench``: the overhead of every isolation level against the host, the peers (runc,
crun, bubblewrap) and emulation (qemu-user), on the same rootfs and the same static workload.

``workloads`` says what is measured, ``subjects`` what runs it, ``runner`` runs them
interleaved, ``named`` drives named jails (bridged network, density), ``report`` and ``plot``
print the results, ``cli`` ties it together. Nothing here is imported by ``jailer run``.
"""
