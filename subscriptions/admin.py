from __future__ import annotations

import csv
import smtplib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from anymail.exceptions import AnymailError
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_q.tasks import async_task

from subscriptions import emails
from subscriptions.models import Delivery, Digest, Subscriber, new_secret
from subscriptions.services import describe


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "status", "language", "actionable_only", "created", "confirmed_at"]
    list_filter = ["status", "language", "fund_lists", "actionable_only"]
    search_fields = ["email"]
    readonly_fields = [
        "created", "confirmation_sent_at", "confirmed_at", "unsubscribed_at", "suppressed_at",
        "status_changed_at",
    ]  # fmt: skip
    actions = ["export_csv", "resend_latest_digest", "revoke_links"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        counts = dict(
            Subscriber.objects.values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        extra = {"subtitle": ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.action(description="Export the selected subscribers as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
        writer = csv.writer(response)
        writer.writerow(
            [
                "email",
                "status",
                "language",
                "fund_lists",
                "actionable_only",
                "created",
                "confirmed_at",
            ]
        )
        for s in queryset.prefetch_related("fund_lists").order_by("id"):
            lists = " ".join(fl.slug for fl in s.fund_lists.all()) or "all"
            writer.writerow(
                [s.email, s.status, s.language, lists, s.actionable_only, s.created.isoformat(),
                 s.confirmed_at.isoformat() if s.confirmed_at else ""]
            )  # fmt: skip
        return response

    @admin.action(description="Revoke the selected subscribers' links (a forwarded digest)")
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        # Links are signed with the subscriber's secret: a new one voids them all.
        # Their next email carries working links again.
        count = 0
        for subscriber in queryset:
            subscriber.secret = new_secret()
            subscriber.save(update_fields=["secret"])
            count += 1
        self.message_user(
            request,
            f"The links of {count} subscriber(s) no longer work; the next email brings new ones.",
        )

    @admin.action(description="Resend the latest digest to the selected subscribers")
    def resend_latest_digest(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        digest = Digest.objects.first()
        if digest is None:
            self.message_user(request, "There is no digest yet.", messages.WARNING)
            return
        confirmed = queryset.filter(status=Subscriber.Status.CONFIRMED)
        for subscriber in confirmed:
            Delivery.objects.get_or_create(digest=digest, subscriber=subscriber)
        rows = _resendable(Delivery.objects.filter(digest=digest, subscriber__in=confirmed))
        if rows:
            async_task("subscriptions.tasks.send_deliveries", digest.pk, rows)
        skipped = queryset.count() - confirmed.count()
        self.message_user(
            request,
            f"Digest {digest.run_date}: {len(rows)} queued for sending by the worker "
            f"({skipped} not confirmed, skipped). The Deliveries page shows each result.",
        )


def _delivery_count(status: str) -> Callable[[Digest], str]:
    """A changelist column: how many of the digest's deliveries have this status."""

    @admin.display(description=status, ordering=status)
    def column(obj: Digest) -> str:
        return str(getattr(obj, status))

    column.__name__ = status  # the cell's CSS class: field-<status>
    return column


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    list_display = ["run_date", "created", *[_delivery_count(s) for s in Delivery.Status.values]]
    exclude = ["parts"]
    readonly_fields = ["run_date", "run", "created"]
    actions = ["send_test_to_me"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Digest]:
        counts = {
            status: Count("deliveries", filter=Q(deliveries__status=status))
            for status in Delivery.Status.values
        }
        return super().get_queryset(request).annotate(**counts)

    @admin.action(description="Send a test copy of the digest to me")
    def send_test_to_me(self, request: HttpRequest, queryset: QuerySet[Digest]) -> None:
        address = getattr(request.user, "email", "")
        if not address:
            self.message_user(request, "Your admin user has no email address.", messages.ERROR)
            return
        for digest in queryset:
            personal = emails.Personal(
                language="en", list_ids=(), unsubscribe_url="#", preferences_url="#"
            )
            try:
                emails.daily_digest(digest.parts, address, personal).send()
            except (smtplib.SMTPException, OSError, AnymailError) as e:
                self.message_user(request, f"Not sent: {describe(e)}", messages.ERROR)
                return
        self.message_user(request, f"Sent {queryset.count()} test digest(s) to {address}.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["digest", "subscriber", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "digest"]
    search_fields = ["subscriber__email"]
    list_select_related = ["digest", "subscriber"]
    actions = ["resend"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Send these deliveries again")
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        rows = _resendable(queryset)
        by_digest: dict[int, list[int]] = {}
        for pk, digest_id in Delivery.objects.filter(pk__in=rows).values_list("pk", "digest_id"):
            by_digest.setdefault(digest_id, []).append(pk)
        for digest_id, ids in by_digest.items():
            async_task("subscriptions.tasks.send_deliveries", digest_id, ids)
        self.message_user(
            request, f"{len(rows)} queued for sending by the worker ({queryset.count()} selected)."
        )


def sending_lease() -> timedelta:
    """How long a live sender may hold a claimed batch.

    Rows "sending" for longer were left by a process that died, and only an
    operator may decide to resend them. The slowest live batch waits the send
    rate, or the mail server's time-out, for each of its messages.
    """
    per_message = max(
        settings.EMAIL_TIMEOUT,
        1 / settings.DIGEST_SEND_RATE if settings.DIGEST_SEND_RATE else 0,
    )
    return max(timedelta(minutes=10), timedelta(seconds=settings.DIGEST_BATCH_SIZE * per_message))


def _resendable(queryset: QuerySet[Delivery]) -> list[int]:
    """Put these rows back in the queue, except those a running sender holds."""
    now = timezone.now()
    held = now - sending_lease()
    free = queryset.exclude(status=Delivery.Status.SENDING, claimed_at__gt=held)
    ids = list(free.values_list("pk", flat=True))
    Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.Status.PENDING, next_attempt_at=now, claimed_at=None
    )
    return ids
