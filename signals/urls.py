from __future__ import annotations

from django.urls import path, re_path, register_converter

from signals import api, feeds, views

app_name = "signals"


class FundCodeConverter:
    """A fund code as the Fund model stores it (510300.SH, at most 12 characters).

    Anything else (control characters, NUL, long strings) never reaches the
    database: it is a plain 404.
    """

    regex = r"[0-9A-Za-z.]{1,12}"

    def to_python(self, value: str) -> str:
        return value.upper()

    def to_url(self, value: str) -> str:
        return value


register_converter(FundCodeConverter, "fund_code")

urlpatterns = [
    path("", views.home, name="home"),
    path("about/signals/", views.about, name="about"),
    path("robots.txt", views.robots, name="robots"),
    path("history/", views.history, name="history"),
    path("history/<str:run_date>/", views.day, name="day"),
    path("lists/<slug:slug>/", views.fund_list, name="list"),
    path("funds/<fund_code:ts_code>/", views.fund, name="fund"),
    path("feed/rss/", feeds.DigestFeed(), name="feed_rss"),
    path("feed/atom/", feeds.AtomDigestFeed(), name="feed_atom"),
    path("api/signals/latest/", api.latest, name="api_latest"),
    path("api/signals/<str:run_date>/", api.by_date, name="api_date"),
    path("api/funds/<fund_code:ts_code>/history/", api.fund_history, name="api_fund"),
    # Anything else under /api/ is a JSON 404, like the API's own errors.
    re_path(r"^api/", api.not_found, name="api_not_found"),
]
