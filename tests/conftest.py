"""Shared fixtures (rows come from tests/factories.py). Area-specific fixtures live in tests/<area>/conftest.py."""
from __future__ import annotations

import pytest
from django.conf import settings

from tests.factories import ApiKeyFactory, UserFactory


def pytest_report_header(config):
    """Say which database the suite runs on (training_hub/test_settings.py: TEST_DATABASE_URL)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "training_hub.embedded_postgres_backend":
        return f"database: embedded PostgreSQL of this pytest process ({db['EMBEDDED_PGDATA']})"
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('NAME')}"


def _set_nodeid(item, nodeid: str) -> None:
    """pytest 9 keeps a node's id as a structured NodeId in `_id` (setting `_nodeid`, as pytest-xdist 3.8 and
    schemathesis do, no longer changes `item.nodeid`)."""
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest 8: the id is the `_nodeid` string
        item._nodeid = nodeid
        return
    item._id = NodeId.parse(nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """How `pytest -n N --dist loadgroup` (pytest-xdist; `make test` passes it) shares the tests out: every test
    that uses the real stack (and all of tests/e2e) runs on one worker (one stack at a time, as without xdist), and
    every other test
    stays with the rest of its module (module-scoped fixtures such as the browser start once).

    xdist groups by a `@<group>` suffix on the node id, which its own hook can no longer add under pytest 9
    (see _set_nodeid): it is added here. Schemathesis gives every API operation's item the same node id (only
    `name` says `[GET /api/me]`): xdist schedules by node id, so all but one of them would silently not run;
    each gets its name in its node id too."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    distributed = bool(getattr(config.option, "loadgroup", False))  # what xdist sets on its workers
    for item in items:
        nodeid = item.nodeid
        if seen[nodeid] > 1 and "[" in item.name:
            nodeid = nodeid.rsplit("::", 1)[0] + "::" + item.name
        if distributed:
            module = nodeid.split("::", 1)[0]
            # tests/e2e starts stacks of its own too (SQLite, the production config) and asks for `stack` by
            # name: one stack at a time, on one worker
            real_stack = "stack" in getattr(item, "fixturenames", ()) or module.startswith("tests/e2e/")
            group = "stack" if real_stack else module
            item.add_marker(pytest.mark.xdist_group(group))
            nodeid = f"{nodeid}@{group}"
        if nodeid != item.nodeid:
            _set_nodeid(item, nodeid)
    if distributed:  # the longest group first, so it does not end the run alone on one worker
        items.sort(key=lambda item: not item.nodeid.endswith("@stack"))


@pytest.fixture(autouse=True)
def _artifact_root(tmp_path, settings):
    """Every test gets its own artifact root, so files never leak between tests."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.UPLOAD_ROOT = settings.ARTIFACT_ROOT / "uploads"
    settings.ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    return settings.ARTIFACT_ROOT


@pytest.fixture(autouse=True)
def _stopped_workers_leave_the_broker():
    """A dramatiq Worker adds a middleware to its broker that starts a consumer for every queue declared later,
    and `Worker.stop()` leaves it there: a stopped test Worker would then take the messages of queues that later
    tests declare (which tests come later depends on how pytest-xdist shares them out). After each test, the
    middleware of every Worker whose threads have all ended is removed from the global broker."""
    yield
    import dramatiq
    from dramatiq.worker import _WorkerMiddleware

    broker = dramatiq.get_broker()
    broker.middleware[:] = [m for m in broker.middleware if not isinstance(m, _WorkerMiddleware)
                            or any(t.is_alive() for t in m.worker.workers)]


@pytest.fixture
def fresh_broker():
    """A new StubBroker as the global broker for one test, whose queues then hold exactly what the test sent.
    A dramatiq Worker that an earlier test in the same process started on the shared broker can still take
    messages from it (which tests ran before depends on how pytest-xdist shared them out)."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    previous = dramatiq.get_broker()
    broker = StubBroker()
    dramatiq.set_broker(broker)
    yield broker
    broker.close()
    dramatiq.set_broker(previous)


@pytest.fixture
def make_user(db):
    def _make(username="alice", role="member", password="pw-123456"):
        return UserFactory(username=username, password=password, role=role)

    return _make


@pytest.fixture
def member(make_user):
    return make_user("member", "member")


@pytest.fixture
def admin_user(make_user):
    return make_user("boss", "admin")


@pytest.fixture
def api_key(member):
    return ApiKeyFactory(user=member).plaintext


@pytest.fixture
def admin_key(admin_user):
    return ApiKeyFactory(user=admin_user).plaintext


@pytest.fixture
def api(client, api_key):
    """Django test client that authenticates to /api with a member's API key."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    return client


@pytest.fixture
def admin_api(client, admin_key):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {admin_key}"
    return client


_TINY_TEXTS = [
    "What is Python? Python is a programming language.",
    "How do I reverse a list? Use reversed(items) or items[::-1].",
    "The dragon roars. Roll for initiative! The goblin attacks with a rusty sword.",
    "def add(a, b):\n    return a + b",
] * 5


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny randomly initialised Llama-style model + BPE tokenizer (built once per session)."""
    from workers.engine.tiny import build_model

    out = tmp_path_factory.mktemp("tiny-base")
    build_model(out, size="nano", texts=_TINY_TEXTS, vocab_size=400, context_length=256)
    return out


@pytest.fixture
def tiny_base_model(db, tiny_model_dir):
    """The tiny model registered as a base model with id `tiny`."""
    from apps.registry.services import base_model_register

    return base_model_register(model_id="tiny", path=str(tiny_model_dir), name="Tiny test model")


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test module (tests/browser.py)."""
    from tests.browser import launch

    yield from launch()


@pytest.fixture(scope="session")
def stack():
    """The real stack (tests/e2e/conftest.py `start_stack`: the embedded PostgreSQL + the embedded Redis, uvicorn,
    Dramatiq workers, the inference process), started once per test session for tests/e2e and tests/sdk alike. The
    data dir is straight under /tmp rather than pytest's tmp_path: as root the PostgreSQL server runs as another
    user, who must traverse the folders above its data, and each new pytest session resets /tmp/pytest-of-root to
    0700."""
    import shutil
    import tempfile
    from pathlib import Path

    from tests.e2e.conftest import start_stack

    data_dir = Path(tempfile.mkdtemp(prefix="hub-e2e-"))
    try:
        yield from start_stack(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    """The real-client tests skip when npm or the CLIs are missing: say so at the end of every run, not only
    with -rs."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "real-client test" in str(r.longrepr)]
    if skipped:
        reasons = dict.fromkeys((r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr))
                                .removeprefix("Skipped: ") for r in skipped)
        terminalreporter.write_sep("-", f"{len(skipped)} real-client test(s) skipped (Claude Code, Codex CLI)",
                                   yellow=True)
        for reason in reasons:
            terminalreporter.write_line(reason)
