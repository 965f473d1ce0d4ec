"""Atomic file writes for preferences, configs and run records (one implementation, shared
with the registry's config files)."""

from registry.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
