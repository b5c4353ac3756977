"""Per-key limits as the accounts app keeps them (apps/accounts/key_limits.py, services, /api, the API-keys
page): validation with field errors, who may change what (admins anything; owners only tighten), the
cached KeyInfo and its invalidation. Enforcement on /v1: tests/proxy/test_key_limits*.py."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.accounts import key_cache
from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create, api_key_update
from apps.core.exceptions import NotFound, ValidationFailed
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def _future(hours=1):
    return timezone.now() + dt.timedelta(hours=hours)


# --- services -------------------------------------------------------------------------------------
def test_limits_are_stored_normalised_and_resolve_to_keyinfo(member):
    expires = _future(2)
    created = api_key_create(user=member, name="ci", allowed_aliases=["production", " staging ", "production"],
                             allowed_models=["12", "mv-7", "claude-*"], rpm=60, tpm=10_000,
                             monthly_tokens=1_000_000, expires_at=expires)
    key = ApiKey.objects.get(pk=created.api_key.pk)
    assert key.allowed_aliases == ["production", "staging"]
    assert key.allowed_models == ["mv-12", "mv-7", "claude-*"]  # version ids name versions one way
    info = key_cache.resolve(created.plaintext)
    assert info == key_cache.KeyInfo(id=key.pk, user_id=member.pk, name="ci",
                                     allowed_aliases=("production", "staging"),
                                     allowed_models=("mv-12", "mv-7", "claude-*"), rpm=60, tpm=10_000,
                                     monthly_tokens=1_000_000, expires_at=expires.timestamp())
    assert info.limited and not info.expired()
    plain = key_cache.resolve(api_key_create(user=member, allowed_aliases=[], allowed_models="").plaintext)
    assert plain.allowed_aliases is None and plain.allowed_models is None and not plain.limited  # empty = all


@pytest.mark.parametrize("limits, field, message", [
    ({"rpm": 0}, "rpm", "between 1 and 1,000,000"),
    ({"tpm": 10**13}, "tpm", "between 1 and"),
    ({"monthly_tokens": -5}, "monthly_tokens", "between 1 and"),
    ({"rpm": True}, "rpm", "whole number"),
    ({"allowed_aliases": ["pro duction"]}, "allowed_aliases", "not a model name"),
    ({"allowed_models": ["a" * 201]}, "allowed_models", "at most 200 characters"),
    ({"allowed_models": [f"m{i}" for i in range(101)]}, "allowed_models", "At most 100 names"),
    ({"allowed_models": [1, 2]}, "allowed_models", "list of names"),
    ({"expires_at": dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)}, "expires_at", "in the future"),
    ({"expires_at": "tomorrow"}, "expires_at", "date and time"),
])
def test_bad_limits_are_field_errors_and_create_nothing(member, limits, field, message):
    with pytest.raises(ValidationFailed) as exc:
        api_key_create(user=member, **limits)
    assert [e["field"] for e in exc.value.errors] == [field]
    assert message in exc.value.errors[0]["message"]
    assert not ApiKey.objects.exists()


def test_several_bad_fields_are_reported_together(member):
    with pytest.raises(ValidationFailed) as exc:
        api_key_create(user=member, name="x" * 101, rpm=0, tpm=0)
    assert {e["field"] for e in exc.value.errors} == {"name", "rpm", "tpm"}


def test_owners_tighten_admins_change_anything(member, admin_user, make_user):
    key = api_key_create(user=member, rpm=100, allowed_aliases=["production", "staging"],
                         expires_at=_future(48)).api_key
    # the owner: tighter is fine
    api_key_update(actor=member, key_id=key.pk, changes={"rpm": 50, "allowed_aliases": ["production"],
                                                          "expires_at": _future(24), "tpm": 1000, "name": "ci"})
    key.refresh_from_db()
    assert (key.rpm, key.allowed_aliases, key.tpm, key.name) == (50, ["production"], 1000, "ci")
    # ... looser is not, field by field, and nothing is half-written
    for changes in ({"rpm": 51}, {"rpm": None}, {"allowed_aliases": ["production", "cloud"]},
                    {"allowed_aliases": None}, {"expires_at": _future(100)}, {"expires_at": None}, {"tpm": None}):
        with pytest.raises(ValidationFailed) as exc:
            api_key_update(actor=member, key_id=key.pk, changes={**changes, "name": "renamed"})
        assert [e["field"] for e in exc.value.errors] == list(changes)[:1]
        assert "Only an admin" in exc.value.errors[0]["message"]
    key.refresh_from_db()
    assert key.name == "ci" and key.rpm == 50
    # a limit nobody set may be set by the owner
    api_key_update(actor=member, key_id=key.pk, changes={"monthly_tokens": 5000})
    # an admin may loosen or clear anything, on anyone's key
    api_key_update(actor=admin_user, key_id=key.pk, changes={"rpm": None, "allowed_aliases": None,
                                                              "expires_at": None, "tpm": 10**6})
    key.refresh_from_db()
    assert (key.rpm, key.allowed_aliases, key.expires_at, key.tpm, key.monthly_tokens) == (None, None, None,
                                                                                           10**6, 5000)
    # another member cannot even see it
    with pytest.raises(NotFound):
        api_key_update(actor=make_user("other"), key_id=key.pk, changes={"rpm": 1})


@pytest.mark.django_db(transaction=True)  # on_commit runs, as in a web process
def test_changing_limits_drops_the_cached_keyinfo(member, settings):
    from apps.core import invalidation

    from tests.security.conftest import redis_available

    if not redis_available():
        pytest.skip("no Redis on 127.0.0.1:6379")
    import uuid

    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.HUB_INVALIDATION_CHANNEL = f"hub:test:{uuid.uuid4().hex}"
    invalidation.reset()
    assert invalidation.wait_live(5)
    try:
        created = api_key_create(user=member, rpm=10)
        prefix = created.plaintext.split("_")[1]
        assert key_cache.resolve(created.plaintext).rpm == 10
        assert prefix in key_cache.cached_prefixes()
        api_key_update(actor=member, key_id=created.api_key.pk, changes={"rpm": 5})
        assert prefix not in key_cache.cached_prefixes()
        assert key_cache.resolve(created.plaintext).rpm == 5
    finally:
        invalidation.reset()
        key_cache.clear()


def test_an_expired_key_still_resolves_so_v1_can_say_why(member):
    created = api_key_create(user=member, expires_at=_future())
    ApiKey.objects.filter(pk=created.api_key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    key_cache.clear()
    assert key_cache.resolve(created.plaintext).expired()


def test_revoked_keys_cannot_be_changed(member):
    from apps.accounts.services import api_key_revoke

    key = api_key_create(user=member).api_key
    api_key_revoke(actor=member, key_id=key.pk)
    with pytest.raises(ValidationFailed):
        api_key_update(actor=member, key_id=key.pk, changes={"rpm": 5})


# --- /api -----------------------------------------------------------------------------------------
def test_api_create_with_limits_shows_the_key_once(api):
    r = api.post("/api/api-keys", {"name": "ci", "allowed_aliases": ["production"], "rpm": 60,
                                   "expires_at": "2999-01-01T00:00:00"}, content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["key"].startswith("th_") and body["rpm"] == 60 and body["allowed_aliases"] == ["production"]
    assert body["expires_at"].startswith("2999-01-01T00:00:00") and body["expired"] is False
    assert body["owner"] == "member" and body["month_tokens_used"] is None
    listed = api.get("/api/api-keys").json()
    assert [k["rpm"] for k in listed if k["name"] == "ci"] == [60] and all("key" not in k for k in listed)


@pytest.mark.parametrize("body, field", [
    ({"rpm": 0}, "rpm"),
    ({"rpm": "sixty"}, "rpm"),
    ({"tpm": 10**13}, "tpm"),
    ({"allowed_models": "mv-1"}, "allowed_models"),
    ({"allowed_models": ["has space"]}, "allowed_models"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "not a date"}, "expires_at"),
    ({"monthly_tokens": 1.5}, "monthly_tokens"),
])
def test_api_validation_errors_name_the_field(api, body, field):
    r = api.post("/api/api-keys", {"name": "x", **body}, content_type="application/json")
    assert r.status_code == 422, r.content
    errors = r.json()["errors"]
    assert errors and errors[0]["field"].split(".")[0] == field, errors
    assert not ApiKey.objects.filter(name="x").exists()


@pytest.fixture
def admin_api2(admin_key):
    """An admin's /api client beside `api` (which shares the `client` fixture with admin_api)."""
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Bearer {admin_key}")


def test_api_patch_changes_only_what_is_sent(api, member, admin_api2):
    admin_api = admin_api2
    key = api_key_create(user=member, name="k", rpm=100, tpm=5000).api_key
    r = api.patch(f"/api/api-keys/{key.pk}", {"rpm": 10}, content_type="application/json")
    assert r.status_code == 200 and r.json()["rpm"] == 10 and r.json()["tpm"] == 5000
    r = api.patch(f"/api/api-keys/{key.pk}", {"tpm": None}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "tpm"
    assert "Only an admin" in r.json()["errors"][0]["message"]
    r = admin_api.patch(f"/api/api-keys/{key.pk}", {"tpm": None, "allowed_models": ["mv-3"]},
                        content_type="application/json")
    assert r.status_code == 200 and r.json()["tpm"] is None and r.json()["allowed_models"] == ["mv-3"]
    assert admin_api.patch("/api/api-keys/999999", {"rpm": 1}, content_type="application/json").status_code == 404


def test_only_admins_list_every_key(api, admin_api2, member, admin_user):
    admin_api = admin_api2
    ApiKeyFactory(user=admin_user, name="boss-key")
    assert api.get("/api/api-keys?all=true").status_code == 403
    assert "boss-key" not in [k["name"] for k in api.get("/api/api-keys").json()]
    everyone = admin_api.get("/api/api-keys?all=true").json()
    assert {k["owner"] for k in everyone} == {"member", "boss"}


def test_api_a_member_cannot_touch_someone_elses_key(api, admin_user):
    other = ApiKeyFactory(user=admin_user)
    r = api.patch(f"/api/api-keys/{other.pk}", {"rpm": 1}, content_type="application/json")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


# --- the page -------------------------------------------------------------------------------------
def test_page_creates_a_key_with_limits(client, member):
    client.force_login(member)
    r = client.post("/accounts/api-keys/", {"name": "laptop", "allowed_aliases": "production, staging",
                                            "allowed_models": "", "rpm": "30", "tpm": "", "monthly_tokens": "",
                                            "expires_at": "2999-05-01T12:30"})
    assert r.status_code == 302
    key = ApiKey.objects.get(user=member)
    assert key.allowed_aliases == ["production", "staging"] and key.rpm == 30 and key.tpm is None
    assert key.expires_at == dt.datetime(2999, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    page = client.get("/accounts/api-keys/")
    assert b"30 req/min" in page.content and b"aliases: production, staging" in page.content


def test_page_field_errors_come_back_with_422_and_create_nothing(client, member):
    client.force_login(member)
    r = client.post("/accounts/api-keys/", {"name": "x", "rpm": "0", "allowed_models": "bad name",
                                            "expires_at": "2001-01-01T00:00"})
    assert r.status_code == 422
    errors = r.context["form"].errors
    assert set(errors) == {"rpm", "allowed_models", "expires_at"}, errors
    assert not ApiKey.objects.exists()
    # htmx: only the form comes back, with its errors
    r = client.post("/accounts/api-keys/", {"name": "x", "tpm": "-1"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and r.content.lstrip().startswith(b"<form id=\"key-form\"")
    assert b"greater than or equal to 1" in r.content and b"<h1>" not in r.content


def test_page_htmx_create_redirects_to_show_the_key(client, member):
    client.force_login(member)
    r = client.post("/accounts/api-keys/", {"name": "ci", "rpm": "5"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 204 and r["HX-Redirect"] == "/accounts/api-keys/"
    page = client.get("/accounts/api-keys/")
    assert page.context["created"]["plaintext"].encode() in page.content


def test_edit_page_owner_may_tighten_but_not_loosen(client, member):
    key = api_key_create(user=member, name="ci", rpm=100).api_key
    client.force_login(member)
    page = client.get(f"/accounts/api-keys/{key.pk}/")
    assert page.status_code == 200 and b'value="100"' in page.content and b"Only an admin" in page.content
    form = {"name": "ci", "rpm": "40", "tpm": "", "monthly_tokens": "", "allowed_aliases": "", "allowed_models": "",
            "expires_at": ""}
    r = client.post(f"/accounts/api-keys/{key.pk}/", form)
    assert r.status_code == 302
    key.refresh_from_db()
    assert key.rpm == 40
    r = client.post(f"/accounts/api-keys/{key.pk}/", {**form, "rpm": ""}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and b"Only an admin can raise or remove this limit" in r.content
    key.refresh_from_db()
    assert key.rpm == 40


def test_edit_page_admin_changes_anyones_key_and_others_get_404(client, member, admin_user, make_user):
    key = api_key_create(user=member, name="ci", rpm=100, expires_at=_future()).api_key
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(hours=1))  # expired
    client.force_login(admin_user)
    listing = client.get("/accounts/api-keys/")
    assert b"member" in listing.content and b"expired" in listing.content  # admins see every key
    form = {"name": "ci", "rpm": "", "tpm": "", "monthly_tokens": "", "allowed_aliases": "", "allowed_models": "",
            "expires_at": (timezone.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}
    r = client.post(f"/accounts/api-keys/{key.pk}/", {**form, "expires_at": ""})  # unexpire, unlimit
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    key.refresh_from_db()
    assert key.rpm is None and key.expires_at is None
    client.force_login(make_user("other"))
    assert client.get(f"/accounts/api-keys/{key.pk}/").status_code == 404
    assert client.post(f"/accounts/api-keys/{key.pk}/", form).status_code == 404
