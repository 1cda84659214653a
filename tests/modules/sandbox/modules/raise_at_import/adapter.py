"""Fails while being imported."""

raise RuntimeError("import-time side effect refused")
