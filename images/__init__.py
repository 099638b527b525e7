"""images: build, store and resolve root filesystems. Independent of ``jailer``."""
