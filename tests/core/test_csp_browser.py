"""Every dashboard page under the Content-Security-Policy, in a real browser.

Debian's chromium (through Playwright) loads each page from pytest-django's live server, which sends the
real CSP header, and records every `securitypolicyviolation` event (installed before any page script),
every console error and every uncaught exception. A page passes when there are none AND its scripts did
their work: the plotly charts are drawn (run, comparison and dataset pages), htmx swaps fragments, the
data-autosubmit selects submit, the run page follows its websocket (mocked with Playwright's
route_web_socket, which the live server cannot serve and which bypasses the CSP check, so a separate test
opens real websockets to check connect-src; tests/e2e/test_browser.py follows a real run over the real
websocket of the whole stack under the policy), the playground calls /v1, Swagger UI renders the API docs.
A control test injects an inline handler and expects it blocked, so these tests would notice a missing or
a permissive policy.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from tests.browser import PROBE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _hist(values: list[int], bins: int = 10) -> dict:
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": [float(e) for e in edges], "counts": counts.tolist()}


def _version(dataset, number: int, n: int = 30):
    """A ready version built with the ORM (not the import pipeline), with the statistics the page charts."""
    from apps.datasets.models import DatasetVersion, Example
    from apps.datasets.validation.pipeline import estimates

    cats = ["python", "dnd", "sql"]
    rows = [{"messages": [{"role": "user", "content": f"Question {i}: what is {i} times {i % 7 + 2}?"},
                          {"role": "assistant", "content": f"{i} times {i % 7 + 2} is {i * (i % 7 + 2)}. " * (1 + i % 3)}],
             "category": cats[i % 3]} for i in range(n)]
    tokens = [len(" ".join(m["content"] for m in r["messages"]).split()) * 2 for r in rows]
    stats = {"examples": n, "splits": {"train": n - 3, "validation": 3}, "categories": {c: n // 3 for c in cats},
             "turns": {"mean": 2, "max": 2, "hist": _hist([2] * n, 1)}, "kinds": {"chat": n},
             "tools": {"examples_with_tool_calls": 0, "calls": {}},
             "duplicates": {"exact": 0, "near": 0, "split_leakage": 0},
             "tokens": {"base_model": "tiny", "context_length": 256, "total": sum(tokens), "mean": 20, "p95": 40,
                        "max": max(tokens), "too_long": 0, "hist": _hist(tokens),
                        "per_role": {"user": 10 * n, "assistant": sum(tokens) - 10 * n},
                        "role_hist": {"user": _hist([10] * n, 1), "assistant": _hist([t - 10 for t in tokens])}},
             "estimates": estimates(tokens=sum(tokens), context_length=256, epochs=3, base_model_id="tiny")}
    v = DatasetVersion.objects.create(dataset=dataset, number=number, status="ready", format="chat-jsonl",
                                      example_count=n, stats=stats, validation={"errors": [], "warnings": []},
                                      base_model_id="tiny", content_hash=f"{number:064d}")
    Example.objects.bulk_create([
        Example(version=v, index=i, messages=r["messages"], category=r["category"],
                split="validation" if i >= n - 3 else "train", content_hash=hashlib.sha256(repr(r).encode()).hexdigest())
        for i, r in enumerate(rows)])
    return v


@pytest.fixture
def site(admin_user, tiny_base_model, client, live_server):
    """A dataset with two versions, two finished runs with loss curves, a model version registered from the
    first run, an admin's session cookie."""
    from apps.datasets.models import Dataset
    from apps.registry.services import model_version_register
    from apps.training.models import MetricPoint, TrainingRun

    dataset = Dataset.objects.create(name="charts", owner=admin_user)
    v1, v2 = _version(dataset, 1), _version(dataset, 2, n=36)
    runs = []
    for k in range(2):
        run = TrainingRun.objects.create(owner=admin_user, dataset_version=v2, name=f"curve {k}", status="succeeded",
                                         base_model=tiny_base_model, current_step=60, total_steps=60,
                                         summary={"loss": 0.7, "final_loss": 0.7, "eval_loss": 0.8})
        MetricPoint.objects.bulk_create(
            [MetricPoint(run=run, step=s, kind="train", values={"loss": 2 * math.exp(-s / (20 + k)) + 0.6})
             for s in range(1, 61)]
            + [MetricPoint(run=run, step=s, kind="eval", values={"eval_loss": 2 * math.exp(-s / 20) + 0.7})
               for s in (20, 40, 60)])
        runs.append(run)
    mv = model_version_register(name="charts-mv", kind="adapter", base_model=tiny_base_model, run=runs[0],
                                dataset_version=v2, created_by=admin_user)
    client.force_login(admin_user)
    return {"url": live_server.url, "session": client.cookies["sessionid"].value, "dataset": dataset.pk,
            "v1": v1.pk, "v2": v2.pk, "runs": [r.pk for r in runs], "mv": mv.pk}


class Page:
    """A page opened with the violation probe and error collectors."""

    def __init__(self, browser, site, path: str, *, logged_in: bool = True, ws_events: list | None = None):
        self.ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        if logged_in:
            self.ctx.add_cookies([{"name": "sessionid", "value": site["session"], "url": site["url"]}])
        self.ctx.add_init_script(PROBE)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        # (Django's admin pages have no icon: the browser's /favicon.ico 404 is not the page's doing)
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if (m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico"))
                     or "Content Security Policy" in m.text else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        if ws_events is not None:
            def ws_handler(ws):
                for msg in ws_events:
                    ws.send(json.dumps(msg))
            self.page.route_web_socket("**/ws/runs/**", ws_handler)
        self.response = self.page.goto(site["url"] + path, wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def problems(self) -> list[str]:
        return list(self.page.evaluate("() => window.__csp")) + self.errors

    def close(self):
        self.ctx.close()


def _open(browser, site, path, **kw) -> Page:
    p = Page(browser, site, path, **kw)
    assert p.response is not None and p.response.status == 200, f"{path}: {p.response and p.response.status}"
    csp = p.response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "style-src 'self'" in csp, f"{path}: no strict CSP header ({csp!r})"
    return p


def test_the_policy_blocks_inline_code(browser, site):
    """The control: an inline handler and an inline style are refused and reported, so the other tests'
    "no violation" means the pages comply, not that nothing is enforced."""
    p = _open(browser, site, "/")
    p.page.evaluate("""() => {
      document.body.insertAdjacentHTML("beforeend", '<img src="data:," onerror="window.__ran = 1"><p id="styled" style="color: rgb(1, 2, 3)">x</p>');
    }""")
    p.page.wait_for_function("() => window.__csp.length >= 2")
    assert p.page.evaluate("() => window.__ran") is None
    assert p.page.evaluate("() => getComputedStyle(document.getElementById('styled')).color") != "rgb(1, 2, 3)"
    directives = " ".join(p.page.evaluate("() => window.__csp"))
    assert "script-src-attr" in directives and "style-src-attr" in directives
    p.close()


def test_websockets_may_go_to_the_pages_host_only(browser, site):
    """connect-src: the run page's socket (same host and port) is allowed, any other host is refused.
    Nothing answers websockets here, so an allowed socket fails to connect but raises no violation."""
    p = _open(browser, site, "/")
    p.page.evaluate("""() => {
      window.__ws = {};
      for (const [name, url] of [["same", "ws://" + location.host + "/ws/runs/1/"], ["other", "ws://example.com:9/ws/"]]) {
        try { new WebSocket(url); window.__ws[name] = "opened"; } catch (e) { window.__ws[name] = e.name; }
      }
    }""")
    p.page.wait_for_function("() => window.__csp.length >= 1")
    p.page.wait_for_timeout(300)
    violations = p.page.evaluate("() => window.__csp")
    assert len(violations) == 1 and "connect-src blocked ws://example.com:9/ws/" in violations[0], violations
    assert p.page.evaluate("() => window.__ws.same") == "opened"
    p.close()


def test_every_dashboard_page_runs_its_scripts_under_the_csp(browser, site):
    r0, r1 = site["runs"]
    pages = {
        "/": None,
        "/datasets/": None,
        "/datasets/upload/": None,
        f"/datasets/{site['dataset']}/?version={site['v2']}": "#chart-turns",
        f"/datasets/{site['dataset']}/diff/?a={site['v1']}&b={site['v2']}": None,
        f"/datasets/versions/{site['v2']}/examples/0/edit/": None,
        "/runs/": None,
        f"/runs/new/?dataset_version={site['v2']}": None,
        f"/runs/{r0}/": "#loss-chart",
        f"/runs/compare/?ids={r0},{r1}": "#compare-chart",
        "/models/": None,
        f"/models/{site['mv']}/": None,
        "/v1/playground/": None,
        "/jobs/": None,
        "/accounts/api-keys/": None,
        "/accounts/users/": None,
        "/admin/": None,
        "/admin/accounts/user/": None,
    }
    failures = {}
    for path, chart in pages.items():
        p = _open(browser, site, path, ws_events=[] if path.startswith("/runs/") else None)
        if chart:
            p.page.wait_for_selector(f"{chart} .main-svg", state="attached")
        if path.startswith("/runs/new/"):
            assert p.page.get_attribute("#run-form input[name=learning_rate]", "placeholder"), "run_form.js did not run"
        problems = p.problems()
        if problems:
            failures[path] = problems
        p.close()
    anonymous = _open(browser, site, "/accounts/login/", logged_in=False)
    if anonymous.problems():
        failures["/accounts/login/"] = anonymous.problems()
    anonymous.close()
    # an error page (the 404 itself is logged by the browser as a failed resource: nothing else may be)
    missing = Page(browser, site, "/datasets/999999/")
    assert missing.response.status == 404
    if [e for e in missing.problems() if "status of 404" not in e]:
        failures["/datasets/999999/"] = missing.problems()
    missing.close()
    assert not failures, json.dumps(failures, indent=1)


def test_api_docs_render_under_the_csp(browser, site):
    p = _open(browser, site, "/api/docs")
    p.page.wait_for_selector(".swagger-ui .opblock", state="attached")  # Swagger UI fetched and drew the schema
    assert p.problems() == []
    p.close()


def test_chart_pages_draw_every_chart(browser, site):
    r0, r1 = site["runs"]
    p = _open(browser, site, f"/runs/{r0}/", ws_events=[])
    p.page.wait_for_selector("#loss-chart .main-svg", state="attached")
    assert p.page.locator("#loss-chart svg.svg-chart").count() == 0  # plotly replaced the server-drawn SVG
    assert p.page.evaluate("() => document.getElementById('loss-chart').data[0].x.length") == 60
    assert p.page.evaluate("() => document.getElementById('loss-chart').data[1].x.length") == 3
    # plotly's stylesheet comes from static/css/plotly.css: its layers are stacked, not laid out one below another
    assert p.page.evaluate("() => getComputedStyle(document.querySelector('#loss-chart .main-svg')).position") == "absolute"
    assert p.problems() == []
    p.close()

    p = _open(browser, site, f"/runs/compare/?ids={r0},{r1}")
    p.page.wait_for_selector("#compare-chart .main-svg", state="attached")
    names = p.page.evaluate("() => document.getElementById('compare-chart').data.map(t => t.name)")
    assert names == [f"#{r0} train", f"#{r0} validation", f"#{r1} train", f"#{r1} validation"]
    assert p.problems() == []
    p.close()

    p = _open(browser, site, f"/datasets/{site['dataset']}/?version={site['v2']}")
    for chart in ("#chart-tokens", "#chart-roles", "#chart-categories", "#chart-turns"):
        p.page.wait_for_selector(f"{chart} .main-svg", state="attached")
    cats = p.page.evaluate("() => document.getElementById('chart-categories').data[0].x")
    assert sorted(cats) == ["dnd", "python", "sql"]
    assert p.problems() == []
    p.close()


def test_charts_are_drawn_before_any_script_runs(browser, site):
    """The first paint already shows the charts: the server draws them as SVG in the HTML (plotly replaces
    them once its bundle has loaded). With JavaScript off, the SVGs are all there is — and they show the data."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, java_script_enabled=False)
    ctx.add_cookies([{"name": "sessionid", "value": site["session"], "url": site["url"]}])
    page = ctx.new_page()
    page.goto(site["url"] + f"/runs/{site['runs'][0]}/")
    lines = page.locator("#loss-chart svg.svg-chart polyline")
    assert lines.count() == 2  # train and validation loss
    assert len(lines.first.get_attribute("points").split()) == 60
    box = page.locator("#loss-chart svg.svg-chart").bounding_box()
    assert box["width"] > 600 and box["height"] > 250  # sized to its card, not a thumbnail
    page.goto(site["url"] + f"/datasets/{site['dataset']}/?version={site['v2']}")
    for chart in ("#chart-tokens", "#chart-roles", "#chart-categories", "#chart-turns"):
        assert page.locator(f"{chart} svg.svg-chart rect").count() >= 1, chart
    labels = page.locator("#chart-categories svg.svg-chart text").all_text_contents()
    assert {"dnd", "python", "sql"} <= set(labels)
    ctx.close()


def test_run_page_follows_its_websocket_and_swaps_results(browser, site):
    from apps.training.models import TrainingRun

    run = TrainingRun.objects.get(pk=site["runs"][0])
    TrainingRun.objects.filter(pk=run.pk).update(status="running")
    events = [
        {"event": "progress", "payload": {"status": "running", "current_step": 62, "total_steps": 80,
                                          "summary": {"loss": 0.5},
                                          "points": [{"step": 61, "kind": "train", "loss": 0.55},
                                                     {"step": 62, "kind": "train", "loss": 0.5}]}},
        {"event": "status", "payload": {"status": "succeeded"}},
    ]
    p = _open(browser, site, f"/runs/{run.pk}/", ws_events=events)
    p.page.wait_for_function("() => window.hubLivePoints === 2")
    p.page.wait_for_function("() => document.getElementById('run-status').dataset.status === 'succeeded'")
    assert p.page.inner_text("#stat-step") == "62"
    assert p.page.inner_text("#stat-loss") == "0.5000"
    assert p.page.query_selector("#cancel-form") is None
    # a terminal status reloads the results fragment through htmx
    for _ in range(100):
        if any("partial=results" in u for u in p.requests):
            break
        p.page.wait_for_timeout(100)
    assert any("partial=results" in u for u in p.requests), p.requests
    p.page.wait_for_load_state("networkidle")
    p.page.wait_for_selector("#results a[href='/models/%d/']" % site["mv"], state="attached")
    assert p.problems() == []
    p.close()


def test_htmx_swaps_and_autosubmit_work_under_the_csp(browser, site):
    # the dataset page: an htmx filter swaps the examples; the epochs field submits its form on change
    p = _open(browser, site, f"/datasets/{site['dataset']}/?version={site['v2']}")
    assert "36 examples" in p.page.inner_text("#examples")
    with p.page.expect_response(lambda r: "partial=examples" in r.url):
        p.page.select_option("#examples select[name=category]", "sql")
    p.page.wait_for_function("() => document.querySelector('#examples p.muted').textContent.includes('12 examples')")
    with p.page.expect_navigation():
        p.page.fill("#epochs", "7")
        p.page.dispatch_event("#epochs", "change")
    assert "epochs=7" in p.page.url
    assert p.page.input_value("#epochs") == "7"
    assert p.problems() == []
    p.close()

    # the users page: a role select submits on change
    from apps.accounts.models import User

    other = User.objects.create_user(username="carol", password="pw-123456", role="member")
    p = _open(browser, site, "/accounts/users/")
    with p.page.expect_navigation():
        p.page.select_option(f"form[action='/accounts/users/{other.pk}/role/'] select[name=role]", "reviewer")
    other.refresh_from_db()
    assert other.role == "reviewer"
    assert p.problems() == []
    p.close()

    # the model page: the deploy form posts through htmx and is swapped in place
    p = _open(browser, site, f"/models/{site['mv']}/")
    p.page.evaluate("() => { document.getElementById('deploy-form').dataset.before = '1'; }")
    p.page.fill("#deploy-form input[name=alias]", "staging")
    with p.page.expect_response(lambda r: r.request.method == "POST" and "/deploy" in r.url):
        p.page.click("#deploy-form button[type=submit]")
    # swapped in place by htmx (the page did not navigate): a new form node without the mark
    p.page.wait_for_function("() => document.getElementById('deploy-form') && !document.getElementById('deploy-form').dataset.before")
    assert p.page.url.endswith(f"/models/{site['mv']}/")
    assert p.problems() == []
    p.close()


def test_playground_calls_v1_under_the_csp(browser, site):
    p = _open(browser, site, "/v1/playground/")
    with p.page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")):
        p.page.fill("#pg-input", "hello")
        p.page.click("#pg-send")
    p.page.wait_for_function("() => document.getElementById('pg-send').disabled === false")
    # the script ran: the turn was added and the upstream's answer (no server here: an error) is shown
    assert p.page.evaluate("() => document.querySelector('#pg-transcript .turn-user .turn-body').textContent") == "hello"
    assert p.page.inner_text("#pg-error").strip()
    # the failed /v1 call is a console error by design; nothing else may be
    assert [e for e in p.problems() if "/v1/chat/completions" not in e and "status of" not in e] == []
    p.close()
