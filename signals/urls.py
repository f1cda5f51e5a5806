from __future__ import annotations

from django.urls import path

from signals import api, feeds, views

app_name = "signals"

urlpatterns = [
    path("", views.home, name="home"),
    path("about/signals/", views.about, name="about"),
    path("robots.txt", views.robots, name="robots"),
    path("history/", views.history, name="history"),
    path("history/<str:run_date>/", views.day, name="day"),
    path("lists/<slug:slug>/", views.fund_list, name="list"),
    path("funds/<str:ts_code>/", views.fund, name="fund"),
    path("feed/rss/", feeds.DigestFeed(), name="feed_rss"),
    path("feed/atom/", feeds.AtomDigestFeed(), name="feed_atom"),
    path("api/signals/latest/", api.latest, name="api_latest"),
    path("api/signals/<str:run_date>/", api.by_date, name="api_date"),
    path("api/funds/<str:ts_code>/history/", api.fund_history, name="api_fund"),
]
