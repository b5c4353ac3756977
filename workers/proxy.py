"""Dramatiq actors for proxy (see the module's owner)."""
