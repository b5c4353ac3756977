from tests.training.conftest import _qa, make_version, qa_version, qa_version_factory  # noqa: F401
