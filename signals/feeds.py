"""RSS and Atom feeds of the daily digests."""

from __future__ import annotations

from datetime import datetime

from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from signals.models import SignalRun
from signals.selectors import Day
from signals.strategy import BUY, SELL

ITEMS = 30


class DigestFeed(Feed):
    title = gettext_lazy("Invest Alchemy: ETF signals")
    description = gettext_lazy("The day's BUY and SELL signals after each close.")

    def link(self) -> str:
        return reverse("signals:home")

    def items(self) -> list[SignalRun]:
        runs = SignalRun.objects.filter(status=SignalRun.Status.SUCCESS).order_by(
            "-run_date", "-finished_at"
        )
        latest: dict[object, SignalRun] = {}
        for run in runs[: ITEMS * 3]:
            latest.setdefault(run.run_date, run)
        return list(latest.values())[:ITEMS]

    def item_title(self, item: SignalRun) -> str:
        return _("ETF signals %(day)s: %(buy)s BUY, %(sell)s SELL") % {
            "day": item.run_date.isoformat(), "buy": item.buy, "sell": item.sell,
        }  # fmt: skip

    def item_description(self, item: SignalRun) -> str:
        day = Day.load(item.run_date, item)
        lines = [s.summary_line() for s in day.actions if s.state in (BUY, SELL)]
        return "\n".join(lines) or _("No fund crossed its averages on this day.")

    def item_link(self, item: SignalRun) -> str:
        return reverse("signals:day", args=[item.run_date.isoformat()])

    def item_pubdate(self, item: SignalRun) -> datetime | None:
        return item.finished_at

    def item_guid(self, item: SignalRun) -> str:
        return f"invest-alchemy-{item.run_date.isoformat()}"

    item_guid_is_permalink = False


class AtomDigestFeed(DigestFeed):
    feed_type = Atom1Feed
    subtitle = DigestFeed.description
