"""Every email the service sends is built here, from three templates per kind.

`templates/emails/<name>-subject.html`, `-body-text.html` and `-body-html.html`;
each message goes out as plain text with an HTML alternative. No
provider-specific code lives outside this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation

from signals.models import FundList, Signal
from signals.strategy import BUY, EMPTY, HOLD, SELL
from subscriptions.models import LANGUAGES, Subscriber

# Placeholders rendered into the digest once, replaced per subscriber.
MARKS = ("sections", "buy", "sell", "unsubscribe_url", "preferences_url")


def mark(name: str) -> str:
    return f"@@IA:{name}@@"


def render_parts(name: str, ctx: Mapping[str, Any]) -> tuple[str, str, str]:
    subject = " ".join(render_to_string(f"emails/{name}-subject.html", ctx).split())
    text = render_to_string(f"emails/{name}-body-text.html", ctx)
    html = render_to_string(f"emails/{name}-body-html.html", ctx)
    return subject, text, html


def make_message(
    name: str, to: str, ctx: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> EmailMultiAlternatives:
    subject, text, html = render_parts(name, ctx)
    return build_message(to, subject, text, html, headers)


def build_message(
    to: str, subject: str, text: str, html: str, headers: Mapping[str, str] | None = None
) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(subject, text, to=[to], headers=dict(headers or {}))
    message.attach_alternative(html, "text/html")
    return message


def confirm_subscription(subscriber: Subscriber) -> None:
    """The double opt-in email: a link to a page with a Confirm button."""
    ctx = {
        "confirm_url": subscriber.confirm_url(),
        "preferences_url": subscriber.preferences_url(),
        "days": settings.SUBSCRIBE_CONFIRM_DAYS,
        "site_url": settings.SITE_URL,
    }
    with translation.override(subscriber.language):
        make_message("confirm", subscriber.email, ctx).send()


def already_subscribed(subscriber: Subscriber) -> None:
    """The answer to a confirmed address subscribing again: its own links, a
    way back to lost preferences, and nothing changed."""
    ctx = {
        "preferences_url": subscriber.preferences_url(),
        "unsubscribe_url": subscriber.unsubscribe_url(),
        "site_url": settings.SITE_URL,
    }
    with translation.override(subscriber.language):
        make_message("already", subscriber.email, ctx).send()


# --- the daily digest -----------------------------------------------------------


def render_digest(
    run_date: date, groups: Sequence[tuple[FundList, list[Signal]]], *, stale: int
) -> dict[str, Any]:
    """Render the digest once per language: a frame and one section per fund list."""
    parts: dict[str, Any] = {"lists": [fl.pk for fl, signals in groups if signals]}
    for language, _label in LANGUAGES:
        with translation.override(language):
            frame_ctx = {
                "run_date": run_date,
                "stale": stale,
                "site_url": settings.SITE_URL,
                **{name: mark(name) for name in MARKS},
            }
            subject, text, html = render_parts("digest", frame_ctx)
            sections = {}
            for fund_list, signals in groups:
                if not signals:
                    continue
                ctx = {"fund_list": fund_list, "signals": signals, "run_date": run_date}
                sections[str(fund_list.pk)] = {
                    "text": render_to_string("emails/digest-section-text.html", ctx),
                    "html": render_to_string("emails/digest-section-html.html", ctx),
                    "buy": sum(s.state == BUY for s in signals),
                    "sell": sum(s.state == SELL for s in signals),
                    "hold": sum(s.state == HOLD for s in signals),
                    "empty": sum(s.state == EMPTY for s in signals),
                }
            parts[language] = {"subject": subject, "text": text, "html": html, "sections": sections}
    return parts


@dataclass(frozen=True)
class Personal:
    """What differs between two subscribers' copies of a digest."""

    language: str
    list_ids: tuple[int, ...]  # empty: every list
    unsubscribe_url: str
    preferences_url: str


def digest_lists(parts: Mapping[str, Any], list_ids: Sequence[int]) -> list[str]:
    """The digest's sections a subscriber gets, in list order."""
    wanted = {str(i) for i in list_ids}
    return [str(i) for i in parts["lists"] if not wanted or str(i) in wanted]


def digest_counts(parts: Mapping[str, Any], keys: Sequence[str]) -> tuple[int, int]:
    sections = parts["en"]["sections"]
    return sum(sections[k]["buy"] for k in keys), sum(sections[k]["sell"] for k in keys)


def daily_digest(parts: Mapping[str, Any], to: str, personal: Personal) -> EmailMultiAlternatives:
    """One subscriber's digest, assembled from the parts rendered once."""
    links = {
        "unsubscribe_url": personal.unsubscribe_url,
        "preferences_url": personal.preferences_url,
    }
    subject, text, html = _assemble(parts, personal, links)
    return build_message(to, subject, text, html, unsubscribe_headers(personal.unsubscribe_url))


def daily_digest_batch(
    parts: Mapping[str, Any], recipients: Sequence[tuple[str, Personal]], field_format: str
) -> AnymailMessage:
    """One provider call for recipients whose digests differ only in their links.

    The links become the provider's merge fields (`field_format`, e.g.
    "%recipient.{}%" for Mailgun) filled from per-recipient merge data, and
    List-Unsubscribe goes in per-recipient merge headers.
    """
    first = recipients[0][1]
    fields = {name: field_format.format(name) for name in ("unsubscribe_url", "preferences_url")}
    subject, text, html = _assemble(parts, first, fields)
    message = AnymailMessage(
        subject,
        text,
        to=[email for email, _p in recipients],
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )
    message.attach_alternative(html, "text/html")
    message.merge_data = {
        email: {"unsubscribe_url": p.unsubscribe_url, "preferences_url": p.preferences_url}
        for email, p in recipients
    }
    message.merge_headers = {
        email: {"List-Unsubscribe": f"<{p.unsubscribe_url}>"} for email, p in recipients
    }
    return message


def unsubscribe_headers(url: str) -> dict[str, str]:
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def _assemble(
    parts: Mapping[str, Any], personal: Personal, links: Mapping[str, str]
) -> tuple[str, str, str]:
    language = personal.language if personal.language in parts else "en"
    rendered = parts[language]
    keys = digest_lists(parts, personal.list_ids)
    buy, sell = digest_counts(parts, keys)
    values = {"buy": str(buy), "sell": str(sell), **links}
    text_values = {**values, "sections": "".join(rendered["sections"][k]["text"] for k in keys)}
    html_values = {
        **{k: _escape_url(v) for k, v in values.items()},
        "sections": "".join(rendered["sections"][k]["html"] for k in keys),
    }
    return (
        _fill(rendered["subject"], values),
        _fill(rendered["text"], text_values),
        _fill(rendered["html"], html_values),
    )


def _fill(template: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        template = template.replace(mark(name), value)
    return template


def _escape_url(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")
