from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from subscriptions import webhooks

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("anymail/", include((webhooks.urlpatterns(), "anymail"))),
    path("", include("subscriptions.urls")),
    path("", include("signals.urls")),
]
