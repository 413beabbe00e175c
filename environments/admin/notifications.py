"""Django admin: webhooks (set up here, per project, with Send test event) with their
deliveries and every attempt, and a Resend button; maintenance windows and mails, read only.

Registered by environments/admin/environments.py, which imports this module.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from environments.admin.environments import ProjectSelect, ReadOnly
from environments.models import (
    DeliveryState,
    MaintenanceWindow,
    Notification,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from environments.notify import webhooks


class WebhookForm(forms.ModelForm):
    """The secret is written, never shown again: empty keeps the one there is."""

    url = forms.URLField(label="URL", max_length=500, assume_scheme="https")
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Signs each event (X-Portal-Signature-256: sha256=HMAC of the body). "
        "Leave empty to keep the current secret.",
    )

    class Meta:
        model = Webhook
        fields = ["project", "name", "url", "secret", "include_text", "active"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        try:
            webhooks.checked_target(url)
        except webhooks.TargetRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return url

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        if secret:
            return secret
        if self.instance.pk:
            return self.instance.secret
        raise forms.ValidationError("A new webhook needs a secret.")


@admin.register(Webhook)
class WebhookAdmin(ProjectSelect, admin.ModelAdmin):
    form = WebhookForm
    # The URL of a Slack or Teams incoming webhook is its secret: the list shows its start.
    list_display = ["name", "project", "masked_url", "active", "include_text", "deliveries_link"]
    list_filter = ["active", "project"]
    # Exact URLs only: a search by part would let a reader spell out the secret.
    search_fields = ["name", "=url", "project__name"]
    autocomplete_fields = ["project"]
    actions = ["send_test_event"]

    @admin.display(description="URL")
    def masked_url(self, obj):
        return obj.masked_url

    @admin.action(description="Send test event", permissions=["change"])
    def send_test_event(self, request, queryset):
        """Post a signed ``test`` event to each selected webhook now, and say how each
        answered (the delivery, with its attempt, is in Webhook deliveries)."""
        for hook in queryset.select_related("project"):
            row = webhooks.send_test_event(hook, request.user)
            attempt = row.attempt_log.first()
            if attempt is None:
                self.message_user(
                    request,
                    f"Test event to {hook.name}: handed to a worker; its answer will be in "
                    "Webhook deliveries.",
                    messages.WARNING,
                )
            elif row.state == DeliveryState.DELIVERED:
                self.message_user(
                    request,
                    f"Test event to {hook.name}: delivered, HTTP {attempt.status_code} "
                    f"in {attempt.seconds:.1f} s.",
                    messages.SUCCESS,
                )
            else:
                answer = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
                if attempt.response:
                    answer += f": {attempt.response[:200]}"
                self.message_user(
                    request, f"Test event to {hook.name} failed: {answer}", messages.ERROR
                )

    @admin.display(description="Deliveries")
    def deliveries_link(self, obj):
        url = reverse("admin:environments_webhookdelivery_changelist")
        return format_html('<a href="{}?webhook__id__exact={}">Deliveries</a>', url, obj.pk)


class WebhookAttemptInline(ReadOnly, admin.TabularInline):
    model = WebhookAttempt
    fields = ["attempted_at", "status_code", "seconds", "response", "error"]
    readonly_fields = fields
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnly, admin.ModelAdmin):
    list_display = [
        "created_at",
        "webhook",
        "event",
        "activity",
        "state",
        "attempts",
        "status_code",
        "next_attempt_at",
    ]
    list_filter = ["state", "event", "webhook"]
    search_fields = ["delivery_id", "webhook__name"]
    list_select_related = ["webhook", "operation"]
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    actions = ["resend_deliveries"]
    change_form_template = "admin/environments/webhookdelivery/change_form.html"

    @admin.display(description="Activity")
    def activity(self, obj):
        return obj.payload.get("activity", "")

    def get_urls(self):
        resend = self.admin_site.admin_view(require_POST(self.resend_view))
        return [
            path("<int:pk>/resend/", resend, name="environments_webhookdelivery_resend"),
            *super().get_urls(),
        ]

    def may_resend(self, request):
        return request.user.has_perm("environments.change_webhook")

    def resend_view(self, request, pk):
        if not self.may_resend(request):
            raise PermissionDenied
        row = get_object_or_404(WebhookDelivery, pk=pk)
        webhooks.resend(row.pk)
        messages.success(request, f"{row} is sent again.")
        return redirect("admin:environments_webhookdelivery_change", row.pk)

    def render_change_form(self, request, context, *args, **kwargs):
        context["may_resend"] = self.may_resend(request)
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.action(description="Resend the selected deliveries")
    def resend_deliveries(self, request, queryset):
        if not self.may_resend(request):
            raise PermissionDenied
        for pk in queryset.values_list("pk", flat=True):
            webhooks.resend(pk)
        self.message_user(request, f"{queryset.count()} delivery(ies) sent again.")

    def get_actions(self, request):
        # Django admin leaves out actions of a model nobody may change; Resend is not a
        # change of the delivery, so it stays.
        actions = super().get_actions(request)
        if self.may_resend(request) and "resend_deliveries" not in actions:
            actions["resend_deliveries"] = self.get_action("resend_deliveries")
        return actions


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["environment", "starts_at", "ends_at", "state", "scheduled_by", "reason"]
    list_filter = ["state", "environment__project"]
    search_fields = ["environment__name", "reason", "scheduled_by__username"]
    list_select_related = ["environment", "scheduled_by"]
    date_hierarchy = "starts_at"


@admin.register(Notification)
class NotificationAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["created_at", "event", "environment", "state", "attempts", "finished_at"]
    list_filter = ["state", "event"]
    search_fields = ["key", "environment__name"]
    list_select_related = ["environment"]
    date_hierarchy = "created_at"
