"""Test settings: the one place tests override the environment-driven settings.

Database (TEST_DATABASE_URL):
- unset (or `embedded`): an embedded PostgreSQL server of this pytest process alone
  (training_hub/embedded_postgres.py; data in this process's temporary folder, not durable, started by the
  first connection, stopped and deleted at exit, or by a watchdog process when this one is killed), so
  concurrent pytest runs never share a server or a database;
- `sqlite://:memory:`: the in-memory SQLite database (the suite's default before the embedded PostgreSQL);
- any other URL (`postgresql://...`, `sqlite:///file`): that database.
"""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

_tmp = Path(tempfile.mkdtemp(prefix="hub-test-"))
os.environ.setdefault("HUB_DATA_DIR", str(_tmp))

from training_hub.settings import *  # noqa: E402,F401,F403

_TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or "embedded"
if _TEST_DATABASE_URL == "embedded":
    from training_hub import embedded_postgres

    # In this process's own folder, not HUB_DATA_DIR (a subprocess of a test inherits the parent's).
    TEST_POSTGRES_DIR = _tmp / "postgres"
    DATABASES = {"default": embedded_postgres.database_settings(TEST_POSTGRES_DIR, durable=False)}
    embedded_postgres.remove_when_gone(TEST_POSTGRES_DIR, os.getpid(), _tmp)
else:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(_TEST_DATABASE_URL)}


def _remove_tmp(pid=os.getpid()):
    if os.getpid() != pid:  # a forked child exiting
        return
    if DATABASES["default"]["ENGINE"] == "training_hub.embedded_postgres_backend":
        embedded_postgres.remove(TEST_POSTGRES_DIR)
    shutil.rmtree(_tmp, ignore_errors=True)


atexit.register(_remove_tmp)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# One pytest process is one client IP for hours: only the throttle tests (tests/security) set real limits.
HUB_THROTTLE_FAILURES_PER_IP = HUB_THROTTLE_FAILURES_PER_ACCOUNT = 10_000
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.stub.StubBroker",
    "OPTIONS": {},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
    ],
}
WHITENOISE_AUTOREFRESH = True
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
HUB_SERVING_GGUF = "off"  # deploys in tests ask for no GGUF export (tests/registry/test_serving_gguf.py turns it on)
