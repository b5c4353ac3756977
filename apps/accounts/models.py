from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        REVIEWER = "reviewer", "Reviewer"
        MEMBER = "member", "Member"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    @property
    def is_hub_admin(self) -> bool:
        return self.role == self.Role.ADMIN or self.is_superuser


class ApiKey(models.Model):
    """An API key for /api and /v1. Only a SHA-256 digest of the secret is stored;
    the full key is shown once, at creation. Keys look like `th_<prefix>_<secret>`."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Limits on /v1 (apps.proxy.limits; the table in apps.accounts.key_limits). None = unlimited / every
    # name allowed. The lists hold names or shell-style patterns (`claude-*`).
    allowed_aliases = models.JSONField(null=True, blank=True)
    allowed_models = models.JSONField(null=True, blank=True)
    rpm = models.PositiveIntegerField("requests per minute", null=True, blank=True)
    tpm = models.PositiveBigIntegerField("tokens per minute", null=True, blank=True)
    monthly_tokens = models.PositiveBigIntegerField("monthly token budget", null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (th_{self.prefix}_…)"


class ApiKeyUsage(models.Model):
    """Tokens a key used in one calendar month (UTC). The live counter is in Redis (apps.proxy.limits);
    a periodic job copies it here (never lowering it), and a Redis that lost the counter is seeded from
    here, so a Redis restart does not reset a monthly budget."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    month = models.DateField()  # the first day of the month
    tokens = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-month"]
        constraints = [models.UniqueConstraint(fields=["api_key", "month"], name="accounts_apikeyusage_key_month")]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.month:%Y-%m}: {self.tokens}"
