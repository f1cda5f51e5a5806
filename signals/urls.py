from __future__ import annotations

from django.urls import path

from signals import views

app_name = "signals"

urlpatterns = [
    path("", views.home, name="home"),
    path("about/signals/", views.about, name="about"),
    path("history/", views.history, name="history"),
    path("history/<str:run_date>/", views.day, name="day"),
    path("lists/<slug:slug>/", views.fund_list, name="list"),
    path("funds/<str:ts_code>/", views.fund, name="fund"),
]
