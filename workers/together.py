"""Dramatiq actors for together (see the module's owner)."""
