"""Discovered by django_dramatiq's `rundramatiq`: importing this registers every actor."""
from workers import datasets, proxy, together, training  # noqa: F401
