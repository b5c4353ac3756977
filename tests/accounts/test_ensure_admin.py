"""`manage.py ensure_admin`: the password goes to a 0600 file, written once; it is printed only on an
interactive terminal, so it never ends up in a captured log."""
from __future__ import annotations

import io
import stat

import pytest
from django.core.management import call_command

from apps.accounts.models import User

pytestmark = pytest.mark.django_db


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _password_file(settings):
    return settings.HUB_DATA_DIR / "admin_password"


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.HUB_DATA_DIR = tmp_path / "var"
    settings.HUB_DATA_DIR.mkdir()
    return settings.HUB_DATA_DIR


def test_not_on_a_terminal_the_password_is_only_in_the_file(data_dir, settings):
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    path = _password_file(settings)
    password = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert User.objects.get(username="admin").check_password(password)
    assert password not in out.getvalue() and str(path) in out.getvalue()

    again = io.StringIO()
    call_command("ensure_admin", stdout=again)  # later runs: still not printed, file unchanged
    assert password not in again.getvalue() and str(path) in again.getvalue()
    assert path.read_text() == password


def test_on_a_terminal_the_password_is_shown(data_dir, settings):
    out = _Terminal()
    call_command("ensure_admin", stdout=out)
    password = _password_file(settings).read_text()
    assert f"admin / {password}" in out.getvalue()
    later = _Terminal()
    call_command("ensure_admin", stdout=later)
    assert f"admin / {password}" in later.getvalue()


def test_a_stale_world_readable_file_is_replaced_with_mode_0600(data_dir, settings):
    path = _password_file(settings)
    path.write_text("old")
    path.chmod(0o644)
    call_command("ensure_admin", stdout=io.StringIO())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() != "old"
