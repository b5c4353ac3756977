import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.models import User
from apps.accounts.services import user_create


class Command(BaseCommand):
    help = "Create the `admin` user on first run and print its credentials (kept in HUB_DATA_DIR/admin_password)."

    def handle(self, *args, **options):
        path = settings.HUB_DATA_DIR / "admin_password"
        if not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            user_create(actor=None, username="admin", password=password, role=User.Role.ADMIN)
            User.objects.filter(username="admin").update(is_superuser=True, is_staff=True)
            path.write_text(password)
            path.chmod(0o600)
            self.stdout.write(f"Created admin user: admin / {password}")
        elif path.exists():
            self.stdout.write(f"Admin user: admin / {path.read_text().strip()}  (from {path})")
        else:
            self.stdout.write("Admin user: admin (password changed since first run)")
