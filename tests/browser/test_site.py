"""The site in a real headless Chromium, against a live server."""

import re

import pytest
from django.core import mail
from django.core.management import call_command

from subscriptions.models import Subscriber
from tests.base import make_fund, make_list

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(live_server, tushare, settings):
    """The live server with three sample funds and their signals."""
    settings.SITE_URL = live_server.url
    funds = [make_fund("510300.SH", "沪深300ETF"), make_fund("513100.SH", "纳指ETF")]
    make_list("long-etf", funds, name="Long ETF", position=1)
    call_command("run_signals", date="2023-06-08", backfill_from="2023-06-01", verbosity=0)
    return live_server.url


@pytest.fixture
def page(browser, site):
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def link_in(message, kind: str, base: str) -> str:
    found = re.search(rf"{re.escape(base)}/{kind}/\S+/", message.body)
    assert found, message.body
    return found.group(0)


def test_subscribe_confirm_change_preferences_and_unsubscribe(page, site):
    page.goto(site + "/")
    page.fill("#id_email", "reader@example.com")
    page.click("form[action='/subscribe/'] button[type=submit]")
    page.wait_for_url("**/check-your-inbox/")
    assert "Check your inbox" in page.inner_text("h1")

    confirm = link_in(mail.outbox[-1], "confirm", site)
    page.goto(confirm)
    assert Subscriber.objects.get().status == "pending"  # opening the link changes nothing
    page.click("#confirm-form button")
    page.wait_for_selector("text=You are subscribed")
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "confirmed"

    page.goto(subscriber.preferences_url())
    page.check("#id_actionable_only")
    page.select_option("#id_language", "zh-hans")
    page.click("main form button[type=submit] >> nth=0")
    page.wait_for_selector("[role=status]")
    subscriber.refresh_from_db()
    assert (subscriber.actionable_only, subscriber.language) == (True, "zh-hans")

    page.goto(subscriber.unsubscribe_url())
    page.click("main form button")
    page.wait_for_selector("h1")
    subscriber.refresh_from_db()
    assert subscriber.status == "unsubscribed"
    assert page.errors == []


def test_a_confirm_page_opened_late_confirms_by_itself_under_the_csp(page, site, settings):
    settings.SUBSCRIBE_AUTOCONFIRM_AFTER = 0  # every opening counts as "late"
    page.goto(site + "/")
    page.fill("#id_email", "late@example.com")
    page.click("form[action='/subscribe/'] button[type=submit]")
    page.wait_for_url("**/check-your-inbox/")
    response = page.goto(link_in(mail.outbox[-1], "confirm", site))
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector("text=You are subscribed")
    assert Subscriber.objects.get().status == "confirmed"
    assert page.errors == []  # a CSP violation would show here


def test_the_fund_chart_draws_three_series_and_markers(page, site):
    page.goto(site + "/funds/510300.SH/?range=all")
    chart = page.locator("svg.chart")
    assert chart.is_visible()
    for css in ("close", "ma-short", "ma-long"):
        path = chart.locator(f"path.{css}")
        assert path.count() == 1
        assert len(path.get_attribute("d")) > 1000
        assert path.bounding_box()["width"] > 300
    assert chart.locator("polygon.marker.buy").count() > 0
    assert chart.locator("polygon.marker.sell").count() > 0
    assert page.errors == []


def test_switching_the_language(page, site):
    page.goto(site + "/")
    assert page.inner_text("h1") == "ETF trading signals"
    page.select_option("#language", "zh-hans")
    page.click("footer form button")
    page.wait_for_selector("html[lang=zh-hans]")
    assert page.inner_text("h1") == "ETF交易信号"
    assert page.errors == []


def test_pages_have_no_serious_accessibility_violations(page, site):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    found = {}
    for path in ("/", "/history/", "/history/2023-06-08/", "/funds/510300.SH/", "/lists/long-etf/",
                 "/about/signals/", "/subscribe/"):  # fmt: skip
        page.goto(site + path)
        results = axe.run(page)
        serious = [
            f"{v['id']}: {v['help']} ({len(v['nodes'])})"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if serious:
            found[path] = serious
    assert found == {}


# What a phone shows: a 360-px-wide screen at twice the pixel density.
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True}


@pytest.fixture(params=["en-US", "zh-CN"])
def phone(browser, site, request, settings):
    context = browser.new_context(locale=request.param, **PHONE)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()


SHOWN_AXIS_TEXT = """svg => [...svg.querySelectorAll('text.axis')]
  .filter(text => getComputedStyle(text).display !== 'none')
  .map(text => {
    const box = text.getBoundingClientRect();
    const size = parseFloat(getComputedStyle(text).fontSize) * text.getScreenCTM().a;
    return {text: text.textContent, date: text.classList.contains('date'), size,
            left: box.left, right: box.right};
  })"""


def test_on_a_phone_the_charts_text_is_readable_and_inside_the_chart(phone, site):
    for chart_range in ("3m", "1y", "all"):
        phone.goto(f"{site}/funds/510300.SH/?range={chart_range}")
        chart = phone.locator("svg.chart")
        box = chart.bounding_box()
        labels = chart.evaluate(SHOWN_AXIS_TEXT)
        assert len([label for label in labels if label["date"]]) == 3, labels
        for label in labels:
            assert label["size"] >= 11, label
            assert box["x"] <= label["left"] and label["right"] <= box["x"] + box["width"], label
        dates = sorted((label for label in labels if label["date"]), key=lambda d: d["left"])
        for before, after in zip(dates, dates[1:], strict=False):
            assert before["right"] < after["left"], (before, after)  # no overlapping dates
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    assert phone.errors == []


def test_on_a_phone_the_signal_tables_keep_since_days_and_change(phone, site):
    for path in ("/", "/lists/long-etf/"):
        phone.goto(site + path)
        for table in phone.locator("table.signals").all():
            headers = table.locator("thead th")
            assert headers.count() >= 5
            for index in range(headers.count()):
                header = headers.nth(index)
                assert header.is_visible(), header.inner_text()
                edge = header.bounding_box()
                assert edge["x"] >= 0 and edge["x"] + edge["width"] <= 360, header.inner_text()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360, path
    assert phone.errors == []
