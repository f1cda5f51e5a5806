from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from django_ratelimit.decorators import ratelimit

from subscriptions import services
from subscriptions.forms import PreferencesForm, SubscribeForm
from subscriptions.models import Subscriber


def client_ip(request: HttpRequest) -> str:
    """The address the proxy saw: the last entry it appended to X-Forwarded-For."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded.split(",")[-1].strip() or request.META.get("REMOTE_ADDR", "")


def _language(request: HttpRequest) -> str:
    language = translation.get_language() or "en"
    return "zh-hans" if language.lower().startswith("zh") else "en"


def _per_address_rate() -> str:
    return f"{settings.SUBSCRIBE_CONFIRMATIONS_PER_DAY}/d"


def _address_key(group: str, request: HttpRequest) -> str:
    return services.normalise_email(request.POST.get("email", ""))[:254]


@require_http_methods(["GET", "POST"])
@ratelimit(key="ip", rate=lambda g, r: settings.SUBSCRIBE_RATE_PER_IP, method="POST", block=True)
@ratelimit(key=_address_key, rate=lambda g, r: _per_address_rate(), method="POST", block=True)
def subscribe(request: HttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = SubscribeForm(data, initial={"language": _language(request)})
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "subscriptions/subscribe.html", {"form": form}, status=400)
        if not form.is_bot():
            services.subscriber_subscribe(
                email=form.cleaned_data["email"],
                language=form.cleaned_data["language"],
                fund_lists=form.cleaned_data["fund_lists"],
                actionable_only=form.cleaned_data["actionable_only"],
            )
        # The same answer for every address: nobody learns who subscribed.
        return redirect("subscriptions:subscribed")
    return render(request, "subscriptions/subscribe.html", {"form": form})


def subscribed(request: HttpRequest) -> HttpResponse:
    return render(request, "subscriptions/subscribed.html")


def rate_limited(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "subscriptions/rate_limited.html", status=429)


def _bad_link(request: HttpRequest, *, expired: bool = False) -> HttpResponse:
    status = 410 if expired else 400
    return render(request, "subscriptions/bad_link.html", {"expired": expired}, status=status)


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    max_age = timedelta(days=settings.SUBSCRIBE_CONFIRM_DAYS)
    try:
        subscriber = Subscriber.from_token(token, "confirm", max_age=max_age)
    except signing.SignatureExpired:
        return _bad_link(request, expired=True)
    except (signing.BadSignature, Subscriber.DoesNotExist):
        return _bad_link(request)
    if request.method == "POST":
        services.subscriber_confirm(subscriber=subscriber)
        return render(request, "subscriptions/confirmed.html", {"subscriber": subscriber})
    age = Subscriber.token_age(token) or timedelta()
    ctx = {
        "subscriber": subscriber,
        # Scanners open links within seconds; a person who comes back later
        # gets the page submitted for them.
        "autosubmit": age.total_seconds() >= settings.SUBSCRIBE_AUTOCONFIRM_AFTER,
    }
    return render(request, "subscriptions/confirm.html", ctx)


@csrf_exempt  # RFC 8058 one-click: the mail client POSTs without a form of ours
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = Subscriber.from_token(token, "unsubscribe")
    except (Subscriber.DoesNotExist, signing.BadSignature):
        # Cut short, revoked, or its subscriber deleted: never "you are
        # unsubscribed" when nothing changed. One answer for all of them, so
        # the page tells nobody which subscriber numbers exist.
        return _bad_link(request)
    if request.method == "POST":
        services.subscriber_unsubscribe(subscriber=subscriber)
        return render(request, "subscriptions/unsubscribed.html", {"subscriber": subscriber})
    return render(request, "subscriptions/unsubscribe.html", {"subscriber": subscriber})


def _preferences_subscriber(token: str) -> Subscriber | None:
    try:
        return Subscriber.from_token(token, "preferences")
    except (signing.BadSignature, Subscriber.DoesNotExist):
        return None


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = _preferences_subscriber(token)
    if subscriber is None:
        return _bad_link(request)
    initial = {
        "fund_lists": subscriber.fund_lists.all(),
        "actionable_only": subscriber.actionable_only,
        "language": subscriber.language,
    }
    form = PreferencesForm(request.POST if request.method == "POST" else None, initial=initial)
    saved = False
    if request.method == "POST":
        if not form.is_valid():
            ctx = {"form": form, "subscriber": subscriber, "token": token}
            return render(request, "subscriptions/preferences.html", ctx, status=400)
        subscriber.language = form.cleaned_data["language"]
        subscriber.actionable_only = form.cleaned_data["actionable_only"]
        subscriber.save(update_fields=["language", "actionable_only"])
        subscriber.fund_lists.set(form.cleaned_data["fund_lists"])
        saved = True
    ctx = {"form": form, "subscriber": subscriber, "token": token, "saved": saved}
    return render(request, "subscriptions/preferences.html", ctx)


@require_http_methods(["GET"])
def export(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = _preferences_subscriber(token)
    if subscriber is None:
        return _bad_link(request)
    body = json.dumps(subscriber.export(), ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="invest-alchemy-data.json"'
    return response


@require_POST
def delete(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = _preferences_subscriber(token)
    if subscriber is None:
        return _bad_link(request)
    services.subscriber_delete(subscriber=subscriber)
    return render(request, "subscriptions/deleted.html")
