from __future__ import annotations

from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Subscribers and digests"

    def ready(self) -> None:
        from subscriptions import webhooks  # noqa: F401  (connects the tracking receiver)
