from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django_q.tasks import async_task

from signals.models import Fund, FundList, FundListItem, PriceBar, Signal, SignalRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the signal job: visible, filterable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FundListItemInline(admin.TabularInline):
    model = FundListItem
    extra = 1
    autocomplete_fields = ["fund"]
    fields = ["fund", "position"]


@admin.register(Fund)
class FundAdmin(admin.ModelAdmin):
    list_display = [
        "ts_code",
        "name",
        "exchange",
        "list_date",
        "delist_date",
        "active",
        "synced_until",
    ]
    list_filter = ["active", "exchange", "lists"]
    search_fields = ["ts_code", "name"]
    readonly_fields = ["exchange", "synced_until", "created"]


@admin.register(FundList)
class FundListAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "position",
        "strategy",
        "short_window",
        "long_window",
        "fund_count",
    ]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [FundListItemInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FundList]:
        return super().get_queryset(request).annotate(fund_count=Count("items"))

    @admin.display(description="funds", ordering="fund_count")
    def fund_count(self, obj: FundList) -> int:
        return obj.fund_count  # type: ignore[attr-defined]


@admin.register(PriceBar)
class PriceBarAdmin(ReadOnlyAdmin):
    list_display = [
        "fund",
        "trade_date",
        "open",
        "high",
        "low",
        "close",
        "pre_close",
        "vol",
        "adj_factor",
    ]
    list_filter = ["fund__lists"]
    date_hierarchy = "trade_date"
    search_fields = ["fund__ts_code", "fund__name"]
    list_select_related = ["fund"]
    show_full_result_count = False


@admin.register(Signal)
class SignalAdmin(ReadOnlyAdmin):
    list_display = [
        "run_date", "fund", "state", "stale", "close", "short_ma", "long_ma", "since", "days",
        "change_percent", "strategy",
    ]  # fmt: skip
    list_filter = ["state", "stale", "strategy", "fund__lists"]
    date_hierarchy = "run_date"
    search_fields = ["fund__ts_code", "fund__name"]
    list_select_related = ["fund"]
    show_full_result_count = False

    @admin.display(description="change", ordering="change")
    def change_percent(self, obj: Signal) -> str:
        return "" if obj.change is None else f"{obj.change * 100:+.2f}%"


class RunSignalsForm(forms.Form):
    run_date = forms.DateField(
        label="Trade date",
        required=False,
        help_text="YYYY-MM-DD. Empty: the latest trade date.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    fund_list = forms.ModelChoiceField(
        FundList.objects.all(), required=False, empty_label="All funds", to_field_name="slug"
    )
    dry_run = forms.BooleanField(required=False, help_text="Compute and report, keep nothing.")


@admin.register(SignalRun)
class SignalRunAdmin(ReadOnlyAdmin):
    list_display = [
        "run_date", "status", "scope", "buy", "sell", "hold", "empty", "insufficient", "stale",
        "error_count", "started_at", "finished_at",
    ]  # fmt: skip
    list_filter = ["status", "provider"]
    date_hierarchy = "run_date"
    readonly_fields = ["errors_text"]
    exclude = ["errors"]
    change_list_template = "admin/signals/signalrun/change_list.html"

    @admin.display(description="errors")
    def errors_text(self, obj: SignalRun) -> str:
        return "\n".join(f"{e['ts_code']}: {e['error']}" for e in obj.errors) or "none"

    def get_urls(self) -> list[URLPattern]:
        run = path("run/", self.admin_site.admin_view(self.run_view), name="signals_signalrun_run")
        return [run, *super().get_urls()]

    def run_view(self, request: HttpRequest) -> HttpResponse:
        """Run the signal job for a chosen date from the admin."""
        if not request.user.has_perm("signals.add_signalrun"):
            messages.error(request, "You may not run signals.")
            return HttpResponseRedirect(reverse("admin:index"))
        form = RunSignalsForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            # The worker runs it: a run can outlast a web request's time limit.
            fund_list = form.cleaned_data["fund_list"]
            run_date = form.cleaned_data["run_date"]  # None: the latest trading day
            async_task(
                "signals.tasks.run_signals",
                run_date.isoformat() if run_date else None,
                fund_list.slug if fund_list else None,
                form.cleaned_data["dry_run"],
                task_name=f"run signals {run_date or 'latest'}",
            )
            day = run_date or "the latest trading day"
            messages.success(
                request,
                f"Signals for {day} ({fund_list or 'every list'}) are queued; the worker "
                "runs them. The run appears here, and its summary under Django Q › "
                "Successful tasks (or Failed tasks).",
            )
            return HttpResponseRedirect(reverse("admin:signals_signalrun_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Run signals",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/signals/signalrun/run.html", context)
