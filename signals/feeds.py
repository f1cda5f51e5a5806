"""RSS and Atom feeds of the daily digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.syndication.views import Feed
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from signals.models import Signal, SignalRun
from signals.selectors import actions_by_date, last_finished_run, run_key

ITEMS = 30
CACHE_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class FeedDay:
    """One item: a run date's latest run and its BUY and SELL signals."""

    run: SignalRun
    actions: list[Signal]

    @property
    def run_date(self) -> date:
        return self.run.run_date


class DigestFeed(Feed):
    title = gettext_lazy("Invest Alchemy: ETF signals")
    description = gettext_lazy("The day's BUY and SELL signals after each close.")

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The feed, built once per run, language and address.

        The key names the run that last wrote signals (a run of any date
        changes an item), so a new run is a new key. Links in the feed are
        absolute, hence the scheme and host in the key.
        """
        site = f"{request.scheme}://{request.get_host()}"
        key = f"feed:{type(self).__name__}:{run_key(last_finished_run())}:"
        key += f"{request.LANGUAGE_CODE}:{site}"
        cached = cache.get(key)
        if cached is not None:
            content, content_type, modified = cached
            response = HttpResponse(content, content_type=content_type)
            if modified:
                response["Last-Modified"] = modified
            return response
        response = super().__call__(request, *args, **kwargs)
        parts = (response.content, response["Content-Type"], response.get("Last-Modified"))
        cache.set(key, parts, timeout=CACHE_SECONDS)
        return response

    def link(self) -> str:
        return reverse("signals:home")

    def items(self) -> list[FeedDay]:
        """The latest run of each of the last ITEMS dates, with their signals in one query."""
        runs = SignalRun.objects.filter(status=SignalRun.Status.SUCCESS).order_by(
            "-run_date", "-finished_at"
        )
        latest: dict[date, SignalRun] = {}
        for run in runs[: ITEMS * 3]:
            latest.setdefault(run.run_date, run)
        shown = list(latest.values())[:ITEMS]
        actions = actions_by_date([run.run_date for run in shown])
        return [FeedDay(run, actions[run.run_date]) for run in shown]

    def item_title(self, item: FeedDay) -> str:
        return _("ETF signals %(day)s: %(buy)s BUY, %(sell)s SELL") % {
            "day": item.run_date.isoformat(), "buy": item.run.buy, "sell": item.run.sell,
        }  # fmt: skip

    def item_description(self, item: FeedDay) -> str:
        lines = [s.summary_line() for s in item.actions]
        return "\n".join(lines) or _("No fund crossed its averages on this day.")

    def item_link(self, item: FeedDay) -> str:
        return reverse("signals:day", args=[item.run_date.isoformat()])

    def item_pubdate(self, item: FeedDay) -> datetime | None:
        return item.run.finished_at

    def item_guid(self, item: FeedDay) -> str:
        return f"invest-alchemy-{item.run_date.isoformat()}"

    item_guid_is_permalink = False


class AtomDigestFeed(DigestFeed):
    feed_type = Atom1Feed
    subtitle = DigestFeed.description
