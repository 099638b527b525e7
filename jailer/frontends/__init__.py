"""frontends layer."""
