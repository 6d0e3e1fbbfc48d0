"""Staff admin for tiers, customers, API keys and usage; the `sales` group may only move customers between tiers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as LibraryAPIKey
from simple_history.admin import SimpleHistoryAdmin

from apps.tiers.models import APIKey, Customer, Tier, UsageRecord
from apps.tiers.services.accounts import revoke_key, set_customer_status

SALES_GROUP = "sales"

if TYPE_CHECKING:
    UsageRecordAdminBase = admin.ModelAdmin[UsageRecord]
else:
    # ModelAdmin is generic only in django-stubs, which production does not install.
    UsageRecordAdminBase = admin.ModelAdmin

admin.site.site_header = "hftplatform admin"
admin.site.site_title = "hftplatform admin"

# The library registers its own concrete APIKey model, which nothing here uses; listing it would show
# staff a second, always empty "API keys" page next to ours.
if admin.site.is_registered(LibraryAPIKey):
    admin.site.unregister(LibraryAPIKey)


def is_sales(user: AbstractBaseUser | AnonymousUser) -> bool:
    """A member of `sales` who is not a superuser (a superuser in the group keeps every power)."""
    if not isinstance(user, PermissionsMixin) or user.is_superuser:
        return False
    return user.groups.filter(name=SALES_GROUP).exists()


class AuditHistoryAdmin(SimpleHistoryAdmin):
    """History pages are a record to read, never an editor.

    simple-history's revert form saves the whole old row, read-only fields included, so through it a
    sales user could restore an old status or name.
    """

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied
        response: HttpResponse = super().history_form_view(request, object_id, version_id, extra_context)
        return response


@admin.register(Tier)
class TierAdmin(AuditHistoryAdmin):
    list_display = (
        "slug",
        "name",
        "refill_per_second",
        "burst",
        "quota_per_minute",
        "quota_per_hour",
        "quota_per_day",
        "latency_sla_p95_ms",
        "monthly_price",
        "is_public",
    )
    list_filter = ("is_public",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    history_list_display = ("refill_per_second", "burst", "monthly_price", "is_public")


@dataclass(frozen=True, slots=True)
class TierChange:
    at: datetime
    by: str
    from_tier: str
    to_tier: str


def tier_changes(customer: Customer) -> list[TierChange]:
    """Each move between tiers in the customer's history, newest first; the oldest row is the sign-up tier."""
    records = list(customer.history.select_related("history_user").order_by("history_date", "history_id"))
    tiers = Tier.objects.in_bulk({record.tier_id for record in records})

    def tier_name(tier_id: int | None) -> str:
        if tier_id is None:
            return "—"
        tier = tiers.get(tier_id)
        return tier.name if tier is not None else f"#{tier_id} (deleted)"

    changes: list[TierChange] = []
    previous: int | None = None
    for record in records:
        if not changes or record.tier_id != previous:
            # No history_user: written outside an admin request (a service, a command, a migration).
            user = record.history_user
            changes.append(
                TierChange(
                    at=record.history_date,
                    by=user.get_username() if user is not None else "—",
                    from_tier=tier_name(previous),
                    to_tier=tier_name(record.tier_id),
                )
            )
        previous = record.tier_id
    return changes[::-1]


def when(moment: datetime | None, default: str = "—") -> str:
    return f"{localtime(moment):%Y-%m-%d %H:%M:%S %Z}" if moment is not None else default


def key_change_url(key: APIKey) -> str:
    return reverse("admin:tiers_apikey_change", args=[quote(key.prefix)])


@admin.register(Customer)
class CustomerAdmin(AuditHistoryAdmin):
    list_display = ("name", "tier", "status", "contact", "created_at")
    list_filter = ("tier", "status")
    search_fields = ("name",)
    list_select_related = ("tier",)
    actions = ("suspend", "reinstate")
    history_list_display = ("tier", "status")

    def get_fieldsets(self, request: HttpRequest, obj: Customer | None = None) -> list[tuple[str | None, Any]]:
        if obj is None:
            return [(None, {"fields": ("name", "tier", "status", "contact_name", "contact_email")})]
        sections: list[tuple[str | None, Any]] = [
            (None, {"fields": ("name", "tier", "status", "contact_name", "contact_email", "created_at")})
        ]
        if request.user.has_perm("tiers.view_apikey"):
            sections.append(("API keys", {"fields": ("key_list",)}))
        sections.append(("Tier changes", {"fields": ("tier_changes",)}))
        return sections

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> list[str]:
        fields = ["created_at", "key_list", "tier_changes"]
        if is_sales(request.user):
            # Derived from the model, so a field added later is read-only for sales until someone decides.
            fields += [f.name for f in Customer._meta.fields if f.editable and not f.primary_key and f.name != "tier"]
        return fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(super().has_add_permission(request)) and not is_sales(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Customer | None = None) -> bool:
        return bool(super().has_delete_permission(request, obj)) and not is_sales(request.user)

    def has_manage_status_permission(self, request: HttpRequest) -> bool:
        return bool(self.has_change_permission(request)) and not is_sales(request.user)

    @admin.display(description="Contact")
    def contact(self, customer: Customer) -> str:
        email = f" <{customer.contact_email}>" if customer.contact_email else ""
        return f"{customer.contact_name}{email}".strip()

    @admin.display(description="Keys")
    def key_list(self, customer: Customer) -> SafeString | str:
        keys = customer.api_keys.order_by("-created")
        if not keys:
            return "No keys."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    key_change_url(key),
                    key.prefix,
                    key.name,
                    ", ".join(p for p, on in (("read", key.can_read), ("trade", key.can_trade)) if on) or "none",
                    "yes" if key.revoked else "no",
                    when(key.expiry_date, "never"),
                    when(key.last_used_at, "never"),
                )
                for key in keys
            ),
        )
        head = (
            "<tr><th>Prefix</th><th>Label</th><th>Permissions</th><th>Revoked</th><th>Expires</th>"
            "<th>Last used</th></tr>"
        )
        return format_html("<table>{}{}</table>", SafeString(head), rows)

    @admin.display(description="History")
    def tier_changes(self, customer: Customer) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((when(c.at), c.by, c.from_tier, c.to_tier) for c in tier_changes(customer)),
        )
        head = "<tr><th>When</th><th>Who</th><th>From</th><th>To</th></tr>"
        return format_html("<table>{}{}</table>", SafeString(head), rows)

    @admin.action(description="Suspend selected customers", permissions=["manage_status"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        self._set_status(request, queryset, Customer.Status.SUSPENDED)

    @admin.action(description="Reinstate selected customers", permissions=["manage_status"])
    def reinstate(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        self._set_status(request, queryset, Customer.Status.ACTIVE)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[Customer], status: str) -> None:
        # One save per customer (not queryset.update) so history and the key-cache signals see each change.
        changed = 0
        for customer in queryset:
            if customer.status != status:
                set_customer_status(customer, status)
                changed += 1
        self.message_user(request, f"{changed} customer(s) now {status}.", messages.SUCCESS)


@dataclass(frozen=True, slots=True)
class KeyRef:
    """What the admin's templates read of `original`/`object`: a name, and a `pk` that is the prefix."""

    pk: str
    name: str

    def __str__(self) -> str:
        return self.name


class KeyChangeList(ChangeList):
    def url_for_result(self, result: Model) -> str:
        return key_change_url(cast(APIKey, result))


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Keys: the secret is shown once on creation (the library's save_model); revoke, never delete.

    The library makes a key's pk "<prefix>.<hashed_key>", so every admin URL, checkbox and log entry
    built from the pk would display the hash. This admin addresses keys by prefix instead. Deleting is
    refused: it would also delete the key's usage records, and revoking keeps the trail.
    """

    # The library's class attributes are typed as tuples of their exact length, hence the ignores.
    list_display = (  # type: ignore[assignment]
        "prefix",
        "name",
        "customer",
        "can_read",
        "can_trade",
        "allowed_cidrs",
        "expiry_date",
        "revoked",
        "last_used_at",
        "created",
    )
    list_filter = ("revoked", "can_trade", "created")  # type: ignore[assignment]
    list_select_related = ("customer",)
    search_fields = ("prefix", "name", "customer__name")  # type: ignore[assignment]
    actions = ("revoke_keys",)
    editable_fields = ("name", "customer", "can_read", "can_trade", "allowed_cidrs", "expiry_date", "revoked")
    fields = ("prefix", *editable_fields, "created", "last_used_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return tuple(f for f in self.editable_fields if f != "revoked")
        return self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        # A key stays with the customer it was issued to; a revoked key is a closed record.
        editable = self.editable_fields if obj.revoked else ("customer",)
        return ("prefix", *editable, "created", "last_used_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> APIKey | None:
        return self.get_queryset(request).filter(prefix=object_id).first()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return KeyChangeList

    def action_checkbox(self, obj: APIKey) -> SafeString:
        attrs = {"class": "action-select", "aria-label": f"Select this object for an action - {obj}"}
        return forms.CheckboxInput(attrs, lambda value: False).render(helpers.ACTION_CHECKBOX_NAME, obj.prefix)

    def response_action(self, request: HttpRequest, queryset: QuerySet[APIKey]) -> HttpResponse | None:
        # The checkboxes carry prefixes (action_checkbox); the base class selects by pk.
        prefixes = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if prefixes:
            post = request.POST.copy()
            pks = APIKey.objects.filter(prefix__in=prefixes).values_list("pk", flat=True)
            post.setlist(helpers.ACTION_CHECKBOX_NAME, list(pks))
            request.POST = post  # type: ignore[assignment]
        response: HttpResponse | None = super().response_action(request, queryset)
        return response

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: APIKey | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["original"] = KeyRef(obj.prefix, str(obj))
        response: HttpResponse = super().render_change_form(request, context, add, change, form_url, obj)
        return response

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        key = self.get_object(request, object_id)
        context = {**(extra_context or {}), **({"object": KeyRef(key.prefix, str(key))} if key else {})}
        response: HttpResponse = super().history_view(request, object_id, context)
        return response

    def response_add(self, request: HttpRequest, obj: APIKey, post_url_continue: str | None = None) -> HttpResponse:
        # Django's own message links the new key by pk; the secret's message is already queued by save_model.
        self.message_user(request, f"The API key “{obj.name}” was added.", messages.SUCCESS)
        if "_addanother" in request.POST:
            return HttpResponseRedirect(request.path)
        if "_continue" in request.POST:
            return HttpResponseRedirect(key_change_url(obj))
        return HttpResponseRedirect(reverse("admin:tiers_apikey_changelist"))

    def log_addition(self, request: HttpRequest, obj: APIKey, message: Any) -> LogEntry:
        return self._log(request, obj, ADDITION, message)

    def log_change(self, request: HttpRequest, obj: APIKey, message: Any) -> LogEntry:
        return self._log(request, obj, CHANGE, message)

    def _log(self, request: HttpRequest, key: APIKey, action_flag: int, message: Any) -> LogEntry:
        # By prefix: "Recent actions" and the history page link to LogEntry.object_id.
        return LogEntry.objects.create(
            user_id=cast(int, request.user.pk),  # admin views admit only signed-in staff
            content_type=ContentType.objects.get_for_model(APIKey),
            object_id=key.prefix,
            object_repr=str(key)[:200],
            action_flag=action_flag,
            change_message=json.dumps(message) if isinstance(message, list) else message,
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[APIKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked=False):
            revoke_key(key)
            self.log_change(request, key, "Revoked.")
            revoked += 1
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)


@admin.register(UsageRecord)
class UsageRecordAdmin(UsageRecordAdminBase):
    """Read-only for everyone: rows are written by the usage flush, and are what customers are billed on."""

    list_display = ("customer", "api_key__prefix", "endpoint", "minute", "requests", "refusals", "bytes_out")
    # No detail page: the list shows every column, and the page's title would be the record's str(),
    # which carries the key's pk (and so its hash).
    list_display_links = None
    list_filter = ("customer", "endpoint")
    list_select_related = ("customer", "api_key")
    search_fields = ("endpoint", "api_key__prefix", "customer__name")
    date_hierarchy = "minute"

    def has_view_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return obj is None and super().has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False
