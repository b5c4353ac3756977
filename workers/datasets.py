"""Dramatiq actors for datasets (see the module's owner)."""
