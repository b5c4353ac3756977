"""`DATABASE_URL` unset: the launcher starts the embedded PostgreSQL (data in $HUB_DATA_DIR/postgres), every
process of the stack uses that one server, a manage.py command run beside the stack reuses it, and its URL
works from outside (that the launcher stops it on Ctrl-C is checked when the `stack` fixture ends)."""
from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.e2e.conftest import ROOT
from training_hub import embedded_postgres

pytestmark = [pytest.mark.e2e]


def test_the_stack_runs_on_the_embedded_postgresql(stack):
    pgdata = (stack.data_dir / "postgres").resolve()
    assert embedded_postgres.is_running(pgdata)
    url = embedded_postgres.url(pgdata)
    assert f"[launcher] embedded PostgreSQL at {url}" in stack.log_path.read_text()
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])

    # A write through the web process lands in that server.
    r = stack.client().post("/api/api-keys", json={"name": "written-through-the-web"})
    assert r.status_code == 201, r.text
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT name FROM accounts_apikey WHERE name = 'written-through-the-web'").fetchone()
        # Written by `manage.py ensure_admin` before the launcher started: the server those commands
        # started and stopped kept its data.
        assert conn.execute("SELECT 1 FROM accounts_user WHERE username = 'admin'").fetchone()
    users = embedded_postgres.server_users(pgdata)
    assert stack.proc.pid in users and len(users) >= 2  # the launcher and (at least) the web process

    # A second start beside the stack reuses the running server and leaves it running.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(HUB_DATA_DIR=str(stack.data_dir), DJANGO_SETTINGS_MODULE="training_hub.settings")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                          "from apps.accounts.models import ApiKey; "
                          "print(ApiKey.objects.filter(name='written-through-the-web').count())"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "1"
    assert embedded_postgres.is_running(pgdata)
    assert int((pgdata / "postmaster.pid").read_text().split()[0]) == postmaster
