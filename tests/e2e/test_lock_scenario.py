"""The lock scenario against the real processes (issue 7, "Database lock"): a big upload of short lines while
two other members create API keys, log in and open pages, and a tiny run trains. No 5xx, the run succeeds,
the upload request answers at once, and the other members' p95 stays within 1 s — on the default database
and on SQLite (one write lock: a long import transaction made every other writer wait, then fail).

The old path (the upload parsed inside the request, in one transaction) fails it on both databases: the
upload request took as long as the import (~4 s of CPU for 30k lines), and on SQLite every write of the
other users waited for the whole import (at 100k lines: 30 s, then 500s and a failed run;
bench/bench_lock.py prints the figures).

The latency bound is for an idle core: on a shared machine every CPU-bound request (a login hashes its
password for ~0.2 s) is slower by the factor the web server's threads waited for a CPU during the import
(`ServerShare`, Linux schedstat), so the bound is scaled by it (never below 1 s). A probe process outside
the stack (`CpuShare`) misjudged that both ways: with autogroup scheduling the stack's session (server,
training run, import worker) shares one group's CPU, so the probe said 3.1x while the server ran ~10x
slower (a CI run: logins p50 3 s), and 12x while the server ran ~3x (the suite's training tests in the
probe's own group). A stall behind another request's transaction is sleeping, not waiting for a CPU, and
is not scaled away: the old path stalled the other users for the whole import, tens of seconds."""
import pytest

from tests.e2e.conftest import start_stack
from tests.e2e.lock_scenario import run_lock_scenario, web_server_pid

pytestmark = [pytest.mark.e2e]

LINES = 30_000
P95_LIMIT_S = 1.0


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hub-lock-sqlite")
    yield from start_stack(data_dir, {"DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}"})


@pytest.mark.parametrize("which", ["stack", "sqlite_stack"])
def test_big_upload_does_not_stall_other_users_or_the_run(which, request):
    s = request.getfixturevalue(which)
    try:
        result = run_lock_scenario(s.url, s.admin_password, lines=LINES, interval_s=0.5, max_steps=20,
                                   baseline_s=1.5, timeout_s=240, server_pid=web_server_pid(s.proc.pid),
                                   log=lambda msg: None)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{s.logs()}") from None
    summary = result.summary()
    print(f"\n[{which}]\n{summary}")
    bad = [f"{x.status or 'no answer'} {x.kind} after {x.seconds:.1f} s: {x.error[:200]}"
           for x in result.server_errors + result.no_answer]
    assert not bad, f"{summary}\n" + "\n".join(bad[:10]) + f"\n{s.logs()}"
    assert result.import_status == "ready" and result.example_count == LINES, summary
    assert result.run_status == "succeeded", f"{summary}\n{s.logs()}"
    # The upload request stores the file and answers within about a second; it does not parse 30k lines.
    assert result.upload_seconds <= 1.0 * result.cpu_factor, summary
    assert len(result.in_window()) >= 10, summary
    assert result.p95 <= P95_LIMIT_S * result.cpu_factor, summary
