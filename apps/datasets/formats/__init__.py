"""Importers: every supported format streams normalized examples plus issues into a Report."""
from apps.datasets.formats.base import ERROR, TARGETS, WARNING, FatalFormatError, Report, make_example  # noqa: F401
from apps.datasets.formats.readers import FORMATS, detect_format, read_path  # noqa: F401
