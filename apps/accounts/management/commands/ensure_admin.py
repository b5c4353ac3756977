"""`manage.py ensure_admin`: create the `admin` user on first run.

The generated password is written once, at creation, to HUB_DATA_DIR/admin_password (mode 0600, created
with that mode: it is never readable by others, not even for a moment). It is printed only when stdout
is an interactive terminal; otherwise (honcho, CI, a redirected log) the command says where the file is,
so the password never lands in a captured log.
"""
import os
import secrets
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.models import User
from apps.accounts.services import user_create


def write_secret(path, secret: str) -> None:
    """Write `secret` to `path` readable by its owner only, replacing any stale file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_TRUNC
        os.write(fd, secret.encode())
    finally:
        os.close(fd)


class Command(BaseCommand):
    help = ("Create the `admin` user on first run; its password is written once to HUB_DATA_DIR/admin_password "
            "(and printed only on an interactive terminal).")

    def _on_terminal(self) -> bool:
        stream = getattr(self.stdout, "_out", sys.stdout)
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def handle(self, *args, **options):
        path = settings.HUB_DATA_DIR / "admin_password"
        tty = self._on_terminal()
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            user_create(actor=None, username="admin", password=password, role=User.Role.ADMIN)
            User.objects.filter(username="admin").update(is_superuser=True, is_staff=True)
            write_secret(path, password)
            shown = password if tty else f"<in {path}>"
            self.stdout.write(f"Created admin user: admin / {shown}  (password kept in {path})")
        elif path.exists():
            shown = path.read_text().strip() if tty else f"<in {path}>"
            self.stdout.write(f"Admin user: admin / {shown}")
        else:
            self.stdout.write("Admin user: admin (password changed since first run)")
