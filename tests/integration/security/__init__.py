"""Escape suite: attacks on the jail policy from inside a container; the host is checked
unchanged after each one."""
