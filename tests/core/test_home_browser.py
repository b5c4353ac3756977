"""Home page and top nav in a real browser at 1440x900 (issue 14): an admin's nav stays on one line, the
account menu holds API keys, API docs, Providers, Users and Log out. With DASH_SHOTS=<folder> the home page
(and a run page with its breadcrumbs) are saved there as screenshots."""
from __future__ import annotations

import os

import pytest

from tests.browser import logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_nav_is_one_line_and_the_account_menu_opens(browser, live_server, admin_user):
    ctx, page, errors = logged_in_page(browser, live_server, admin_user)
    page.goto(live_server.url + "/")
    tops = page.eval_on_selector_all(".topbar nav a", "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    assert len(tops) >= 10 and len(set(tops)) == 1, tops  # every link on the same line
    height = page.eval_on_selector(".topbar", "e => e.getBoundingClientRect().height")
    assert height < 60, height
    right = page.eval_on_selector(".account-menu", "e => e.getBoundingClientRect().right")
    assert right <= 1440
    assert not page.is_visible("text=Providers")
    page.click("#account-menu summary")
    for label in ("API keys", "API docs", "Providers", "Users", "Log out"):
        assert page.is_visible(f"#account-menu >> text={label}"), label
    assert page.is_visible("#home-jobs") and page.is_visible("#home-traffic")
    if os.environ.get("DASH_SHOTS"):
        page.screenshot(path=os.path.join(os.environ["DASH_SHOTS"], "home_admin_menu.png"))
    assert errors == []
    ctx.close()
