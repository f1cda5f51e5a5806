from unittest import mock

from django.template.loader import render_to_string
from django.test import SimpleTestCase
from django.utils import translation

from tests.base import TushareTestCase, run_command

STYLED = '<link rel="stylesheet" href="/static/css/site.css">'


class SiteErrorsTestCase(TushareTestCase):
    def setUp(self):
        super().setUp()
        run_command("run_signals", date="2023-06-08", backfill_from="2023-05-29")

    def assertStyledPage(self, response, status, text):
        self.assertContains(response, text, status_code=status)
        self.assertContains(response, STYLED, status_code=status)
        self.assertNotContains(response, "<style", status_code=status)  # the CSP blocks it

    def test_a_day_has_one_address(self):
        response = self.client.get("/history/20230608/")
        self.assertRedirects(response, "/history/2023-06-08/", status_code=301)

    def test_it_jumps_from_a_day_without_a_run_to_the_run_before(self):
        self.assertRedirects(
            self.client.get("/history/", {"date": "2023-06-03"}), "/history/2023-06-02/"
        )
        self.assertRedirects(
            self.client.get("/history/", {"date": "2023-05-01"}), "/history/2023-05-29/"
        )

    def test_it_explains_a_day_without_a_run_with_links_to_the_nearest_runs(self):
        response = self.client.get("/history/2023-06-03/")
        day = '<time datetime="2023-06-03">'
        self.assertStyledPage(response, 404, f"No signals for {day}3 Jun 2023</time>")
        self.assertContains(response, 'rel="prev" href="/history/2023-06-02/"', status_code=404)
        self.assertContains(response, 'rel="next" href="/history/2023-06-05/"', status_code=404)
        chinese = self.client.get("/history/2023-06-03/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertStyledPage(chinese, 404, f"{day}2023年6月3日</time> 没有信号")

    def test_it_answers_bad_fund_codes_with_the_sites_404(self):
        for url in ("/funds/%00/", "/funds/510300.SH%00/", "/funds/%0A/",
                    f"/funds/{'5' * 5000}.SH/", "/funds/999999.SH/", "/history/%00/"):  # fmt: skip
            with self.subTest(url=url):
                self.assertStyledPage(self.client.get(url), 404, "Page not found")
        chinese = self.client.get("/funds/%00/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertStyledPage(chinese, 404, "找不到页面")
        self.assertNotContains(chinese, "\x00", status_code=404)

    def test_it_shows_a_styled_page_for_a_server_error(self):
        self.client.raise_request_exception = False
        with mock.patch("signals.views.published_dates", side_effect=RuntimeError("boom")):
            response = self.client.get("/history/")
            chinese = self.client.get("/history/", HTTP_ACCEPT_LANGUAGE="zh-hans")
        self.assertStyledPage(response, 500, "Something went wrong")
        self.assertNotContains(response, "boom", status_code=500)
        self.assertStyledPage(chinese, 500, "出错了")

    def test_it_shows_a_styled_translated_page_when_the_csrf_check_fails(self):
        strict = self.client_class(enforce_csrf_checks=True)
        response = strict.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
        self.assertStyledPage(response, 403, "The form has expired")
        chinese = strict.post("/subscribe/", {"email": "a@example.com"},
                              HTTP_ACCEPT_LANGUAGE="zh-hans")  # fmt: skip
        self.assertStyledPage(chinese, 403, "表单已过期")

    def test_it_shows_a_styled_page_for_a_bad_request(self):
        response = self.client.get("/", HTTP_HOST="elsewhere.example")
        self.assertStyledPage(response, 400, "Bad request")


class ErrorTemplatesTestCase(SimpleTestCase):
    """SimpleTestCase refuses database queries: the 500 page must need none."""

    def test_it_renders_the_500_page_without_a_request_or_the_database(self):
        for language, text in (("en", "Something went wrong"), ("zh-hans", "出错了")):
            with self.subTest(language=language), translation.override(language):
                html = render_to_string("500.html")
                self.assertIn(text, html)
                self.assertIn(STYLED, html)
                self.assertNotIn("<form", html)

    def test_it_leaves_forms_out_of_pages_rendered_without_a_request(self):
        for name in ("400.html", "403_csrf.html"):
            with self.subTest(name=name):
                self.assertNotIn("<form", render_to_string(name))
