"""The production configuration: PostgreSQL (DATABASE_URL) and an external Redis (REDIS_URL) instead of
SQLite and the embedded server — the same loop through the real processes. Skipped where no PostgreSQL
or Redis server answers on localhost (a user's fresh machine); CI's machine has both."""
import os
import socket
import uuid

import pytest

from tests.e2e.conftest import start_stack
from tests.e2e.test_loop import run_whole_loop

pytestmark = [pytest.mark.e2e]

PG_ADMIN_URL = os.environ.get("HUB_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def prod_stack(tmp_path_factory):
    if not (_reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)):
        pytest.skip("no PostgreSQL on :5432 or Redis on :6379")
    import psycopg
    import redis

    name = f"hub_e2e_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"cannot create a PostgreSQL database: {exc}")
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield from start_stack(tmp_path_factory.mktemp("hub-prod"), {"DATABASE_URL": db_url, "REDIS_URL": REDIS_TEST_URL})
    finally:
        redis.Redis.from_url(REDIS_TEST_URL).flushdb()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_whole_loop_on_postgresql_and_external_redis(prod_stack):
    assert "embedded Redis" not in prod_stack.logs()
    run_whole_loop(prod_stack, alias="prod-e2e")
