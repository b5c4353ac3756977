"""Dramatiq actors for training (see the module's owner)."""
