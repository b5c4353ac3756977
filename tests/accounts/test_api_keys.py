import pytest

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_authenticate, api_key_create, api_key_revoke, user_create, user_set_role
from apps.core.exceptions import PermissionDenied, ValidationFailed

pytestmark = pytest.mark.django_db


def test_key_is_stored_hashed_and_authenticates(member):
    created = api_key_create(user=member, name="laptop")
    row = ApiKey.objects.get(pk=created.api_key.pk)
    assert created.plaintext.startswith("th_")
    assert created.plaintext.split("_", 2)[2] not in row.digest  # the secret is not stored
    assert len(row.digest) == 64
    assert api_key_authenticate(created.plaintext) == member
    assert api_key_authenticate(created.plaintext + "x") is None
    assert api_key_authenticate("th_nope_nope") is None
    assert api_key_authenticate(None) is None


def test_revoked_key_stops_working(member):
    created = api_key_create(user=member)
    api_key_revoke(actor=member, key_id=created.api_key.pk)
    assert api_key_authenticate(created.plaintext) is None


def test_api_requires_a_valid_key(client, api_key):
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", HTTP_AUTHORIZATION="Bearer th_bad_key").status_code == 401
    r = client.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert r.status_code == 200 and r.json()["username"] == "member"


def test_api_key_create_via_api_shows_key_once(api):
    r = api.post("/api/api-keys", {"name": "ci"}, content_type="application/json")
    assert r.status_code == 201
    body = r.json()
    assert body["key"].startswith("th_") and body["id"]
    listed = api.get("/api/api-keys").json()
    assert all("key" not in k for k in listed)


def test_only_admins_manage_users(member, admin_user):
    with pytest.raises(PermissionDenied):
        user_create(actor=member, username="x", password="longenough")
    u = user_create(actor=admin_user, username="rev", password="longenough", role="reviewer")
    assert u.role == "reviewer"
    with pytest.raises(ValidationFailed) as exc:
        user_create(actor=admin_user, username="rev", password="short", role="nope")
    fields = {e["field"] for e in exc.value.errors}
    assert fields == {"username", "password", "role"}
    with pytest.raises(PermissionDenied):
        user_set_role(actor=member, user_id=u.pk, role="admin")


def test_create_api_key_command_prints_a_working_key(member, capsys):
    from django.core.management import call_command

    call_command("create_api_key", "member")
    key = capsys.readouterr().out.strip()
    assert api_key_authenticate(key) == member


def test_login_page_and_dashboard_requires_login(client, member):
    r = client.get("/")
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]
    assert client.get("/accounts/login/").status_code == 200
    r = client.post("/accounts/login/", {"username": "member", "password": "pw-123456"})
    assert r.status_code == 302
